/**
 * HTTP routes. All bodies are JSON (`content-type: application/json`), at most
 * MAX_REQUEST_BODY_BYTES. Every non-2xx reply is an ErrorBody. "auth" means the request carries
 * `Authorization: Basic ...` for one device (see accounts.ts `authorizationHeader`).
 *
 * | method | path                               | auth | request            | reply                       |
 * |--------|------------------------------------|------|--------------------|-----------------------------|
 * | GET    | /healthz                           | no   | -                  | 200 HealthResponse          |
 * | POST   | /v1/accounts                       | no   | RegisterRequest    | 201 RegisterResponse        |
 * | POST   | /v1/devices                        | yes  | AddDeviceRequest   | 201 RegisterResponse        |
 * | GET    | /v1/devices                        | yes  | -                  | 200 DevicesResponse (own)   |
 * | POST   | /v1/devices/link-token             | yes  | -                  | 200 LinkTokenResponse       |
 * | POST   | /v1/devices/link                   | token | LinkDeviceRequest | 201 RegisterResponse        |
 * | PUT    | /v1/provisioning/:address          | yes  | ProvisioningMessageRequest | 204                 |
 * | GET    | /v1/provisioning                   | no   | WebSocket upgrade  | see linking.ts              |
 * | DELETE | /v1/devices/:deviceId              | yes  | -                  | 204 (own account's device)  |
 * | GET    | /v1/devices/:username              | yes  | -                  | 200 DeviceListResponse      |
 * | PUT    | /v1/keys                           | yes  | UploadKeysRequest  | 204                         |
 * | GET    | /v1/keys/count                     | yes  | -                  | 200 KeyCountResponse        |
 * | POST   | /v1/keys/one-time                  | yes  | AddKeysRequest     | 204                         |
 * | GET    | /v1/keys/:username                 | yes  | -                  | 200 BundleResponse (all devices) |
 * | GET    | /v1/keys/:username/:deviceId       | yes  | -                  | 200 BundleResponse (one device)  |
 * | POST   | /v1/ws-ticket                      | yes  | -                  | 200 TicketResponse          |
 * | GET    | /v1/me                             | yes  | -                  | 200 MeResponse              |
 * | GET    | /v1/directory                      | yes  | -                  | 200 DirectoryResponse       |
 * | POST   | /v1/admin/invites                  | admin | CreateInvitesRequest | 201 InvitesResponse      |
 * | GET    | /v1/admin/accounts                 | admin | -                 | 200 AccountsResponse        |
 * | POST   | /v1/admin/accounts/:username/reset | admin | -                 | 200 ResetAccountResponse    |
 * | GET    | /v1/ws                             | frame or ?ticket= | WebSocket upgrade | see frames.ts |
 * | *      | /v1/attachments[/:id[/upload]]     | yes  | see attachments.ts                               |
 */
export const ROUTES = {
  health: '/healthz',
  accounts: '/v1/accounts',
  devices: '/v1/devices',
  device: (deviceId: number) => `/v1/devices/${deviceId}`,
  linkToken: '/v1/devices/link-token',
  link: '/v1/devices/link',
  provisioning: '/v1/provisioning',
  provisioningMessage: (address: string) => `/v1/provisioning/${encodeURIComponent(address)}`,
  deviceList: (username: string) => `/v1/devices/${encodeURIComponent(username)}`,
  keys: '/v1/keys',
  keyCount: '/v1/keys/count',
  keysAdd: '/v1/keys/one-time',
  bundle: (username: string, deviceId?: number) =>
    deviceId === undefined ? `/v1/keys/${encodeURIComponent(username)}` : `/v1/keys/${encodeURIComponent(username)}/${deviceId}`,
  ticket: '/v1/ws-ticket',
  me: '/v1/me',
  directory: '/v1/directory',
  adminInvites: '/v1/admin/invites',
  adminAccounts: '/v1/admin/accounts',
  adminReset: (username: string) => `/v1/admin/accounts/${encodeURIComponent(username)}/reset`,
  ws: '/v1/ws',
  wsWithTicket: (ticket: string) => `/v1/ws?ticket=${encodeURIComponent(ticket)}`,
  attachments: '/v1/attachments',
  attachment: (id: string) => `/v1/attachments/${encodeURIComponent(id)}`,
  attachmentUpload: (id: string) => `/v1/attachments/${encodeURIComponent(id)}/upload`,
} as const;

export interface HealthResponse {
  ok: true;
}
