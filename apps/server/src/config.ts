/**
 * Server configuration: every limit is named here with its default from @tacit/api (where the
 * limit is part of the contract) and may be overridden per server (`buildServer({ limits })`, or
 * `TACIT_<NAME>` environment variables in main.ts, e.g. TACIT_MAX_QUEUE_PER_DEVICE).
 */
import * as api from '@tacit/api';

export interface Limits {
  /** Ciphertext body bytes; at most api.MAX_MESSAGE_BYTES (the contract's ceiling). */
  maxMessageBytes: number;
  /** WebSocket frame bytes; larger frames close the socket with 1009 before buffering. */
  maxFrameBytes: number;
  /** HTTP request body bytes (413 PAYLOAD_TOO_LARGE). */
  maxRequestBodyBytes: number;
  /** Messages pushed to one connection and not yet acknowledged. */
  maxUnackedPerConnection: number;
  /** Sends received on one connection and not yet answered. */
  maxPendingSendsPerConnection: number;
  /** Per-device send bucket. */
  sendRatePerSecond: number;
  sendBurst: number;
  /**
   * Devices one `send-multi` may address (TOO_MANY_RECIPIENTS beyond); it takes that many send
   * tokens, so it is never above `sendBurst` (nor the contract's api.MAX_FANOUT_DEVICES).
   */
  maxFanoutDevices: number;
  /** Ciphertext bytes one `send-multi` may store in all (MESSAGE_TOO_LARGE beyond). */
  maxFanoutBytes: number;
  /**
   * Daily quotas per sending account (relay/quotas.ts; SEND_QUOTA_EXCEEDED beyond): messages to one
   * recipient device, messages in all, ciphertext bytes in all. Each is a bucket of one day's
   * quota refilled evenly over 24 hours.
   */
  sendsPerRecipientDevicePerDay: number;
  sendsPerAccountPerDay: number;
  sendBytesPerAccountPerDay: number;
  /** Per-connection frame bucket; exhausting it closes the socket (RATE_LIMITED). */
  frameRatePerSecond: number;
  frameBurst: number;
  /** Per (requesting account, target user) bundle fetch bucket: an account's devices share it. */
  bundleFetchBurst: number;
  bundleFetchPerMinute: number;
  /** Failed device logins per client address (login-throttle.ts); past the burst, RATE_LIMITED for a while. */
  loginFailureBurst: number;
  loginFailuresPerMinute: number;
  /** Per client IP registration bucket (accounts and devices). */
  registrationBurst: number;
  registrationPerHour: number;
  maxDevicesPerAccount: number;
  maxConnectionsPerAccount: number;
  maxQueuePerDevice: number;
  /** Undelivered messages are deleted this long after they were stored. */
  messageTtlMs: number;
  authTimeoutMs: number;
  ticketTtlMs: number;
  /** Lifetime of a link token (POST /v1/devices/link-token). */
  linkTokenTtlMs: number;
  /** Lifetime of a provisioning channel (GET /v1/provisioning). */
  provisioningChannelTtlMs: number;
  /**
   * Per-device bucket for minting WebSocket tickets (POST /v1/ws-ticket; 429 beyond). A client
   * mints one per connection attempt, and reconnects at most every few seconds.
   */
  ticketMintBurst: number;
  ticketMintPerMinute: number;
  /** Invite codes expire unused after this long. */
  inviteTtlMs: number;
  /**
   * Sockets connected but not yet authenticated, server-wide. Bounds what anonymous clients can
   * hold open; beyond it new sockets are closed with UNAVAILABLE.
   */
  maxUnauthenticatedConnections: number;
  /**
   * Sockets not yet authenticated from one client address (an IPv6 address counts by its /64);
   * beyond it new sockets from that address are closed with UNAVAILABLE. Past the node-wide
   * budget above, the oldest unauthenticated socket of the busiest address is closed instead of
   * the new one (relay/hub.ts).
   */
  maxUnauthenticatedPerAddress: number;
  /** HTTP (http-guard.ts): a request's headers (an upgrade's too) must arrive within this (408, closed). */
  httpHeadersTimeoutMs: number;
  /** HTTP: a request's body must arrive within this after its headers (attachment upload pieces excepted). */
  httpBodyTimeoutMs: number;
  /** HTTP: a whole request, headers and body, must arrive within this (408, closed). */
  httpRequestTimeoutMs: number;
  /** HTTP: a socket with no traffic for this long is destroyed (WebSockets excepted: heartbeat). */
  httpIdleTimeoutMs: number;
  /** HTTP: a kept-alive connection waits this long for its next request. */
  httpKeepAliveTimeoutMs: number;
  /** Open TCP connections (HTTP and WebSocket) per client address; more are destroyed on arrival. Trusted proxies are not capped. */
  maxHttpConnectionsPerAddress: number;
  /** WebSocket ping interval; a socket that missed one pong is dropped. */
  heartbeatIntervalMs: number;
  /** How often expired messages, invites, tickets and attachments are deleted. */
  expirySweepIntervalMs: number;
  /**
   * Several nodes: how long a message that arrived before an older one (stored by another node,
   * its event still on the way through Redis) waits for it before the node reads the queue from
   * the store instead. Longer saves store reads when nodes are busy; shorter delivers sooner when
   * an event is lost (Redis restarting).
   */
  outOfOrderWaitMs: number;
  /** Largest attachment (plaintext bytes); a larger upload is refused before any byte is stored. */
  maxAttachmentBytes: number;
  /** Attachment bytes one account may hold at once. */
  attachmentQuotaBytes: number;
  /** A finished attachment is deleted this long after its upload completed. */
  attachmentTtlMs: number;
  /** An unfinished upload is deleted this long after it was created. */
  attachmentUploadTtlMs: number;
  /** Per-device attachment creation bucket. */
  attachmentCreateBurst: number;
  attachmentCreatePerHour: number;
  /** Per-device bucket for every other attachment request (upload pieces, status, downloads). */
  attachmentRequestBurst: number;
  attachmentRequestsPerSecond: number;
}

export const DEFAULT_LIMITS: Readonly<Limits> = Object.freeze({
  maxMessageBytes: api.MAX_MESSAGE_BYTES,
  maxFrameBytes: api.MAX_FRAME_BYTES,
  maxRequestBodyBytes: api.MAX_REQUEST_BODY_BYTES,
  maxUnackedPerConnection: api.MAX_UNACKED_PER_CONNECTION,
  maxPendingSendsPerConnection: api.MAX_PENDING_SENDS_PER_CONNECTION,
  sendRatePerSecond: api.SEND_RATE_PER_SECOND,
  sendBurst: api.SEND_BURST,
  maxFanoutDevices: api.MAX_FANOUT_DEVICES,
  maxFanoutBytes: api.MAX_FANOUT_BYTES,
  sendsPerRecipientDevicePerDay: 2_000,
  sendsPerAccountPerDay: 100_000,
  sendBytesPerAccountPerDay: 1024 * 1024 * 1024,
  frameRatePerSecond: api.FRAME_RATE_PER_SECOND,
  frameBurst: api.FRAME_BURST,
  bundleFetchBurst: api.BUNDLE_FETCH_BURST,
  bundleFetchPerMinute: api.BUNDLE_FETCH_PER_MINUTE,
  loginFailureBurst: 20,
  loginFailuresPerMinute: 10,
  registrationBurst: api.REGISTRATION_BURST,
  registrationPerHour: api.REGISTRATION_PER_HOUR,
  maxDevicesPerAccount: api.MAX_DEVICES_PER_ACCOUNT,
  maxConnectionsPerAccount: api.MAX_CONNECTIONS_PER_ACCOUNT,
  maxQueuePerDevice: api.MAX_QUEUE_PER_DEVICE,
  messageTtlMs: api.MESSAGE_TTL_MS,
  authTimeoutMs: api.AUTH_TIMEOUT_MS,
  ticketTtlMs: api.TICKET_TTL_MS,
  linkTokenTtlMs: api.LINK_TOKEN_TTL_MS,
  provisioningChannelTtlMs: api.PROVISIONING_CHANNEL_TTL_MS,
  ticketMintBurst: 30,
  ticketMintPerMinute: 30,
  inviteTtlMs: 7 * 24 * 60 * 60 * 1000,
  maxUnauthenticatedConnections: 1000,
  maxUnauthenticatedPerAddress: 64,
  httpHeadersTimeoutMs: 10_000,
  httpBodyTimeoutMs: 30_000,
  httpRequestTimeoutMs: 120_000,
  httpIdleTimeoutMs: 60_000,
  httpKeepAliveTimeoutMs: 30_000,
  maxHttpConnectionsPerAddress: 256,
  heartbeatIntervalMs: 30_000,
  expirySweepIntervalMs: 60_000,
  outOfOrderWaitMs: 100,
  maxAttachmentBytes: api.MAX_ATTACHMENT_BYTES,
  attachmentQuotaBytes: api.ATTACHMENT_QUOTA_BYTES,
  attachmentTtlMs: api.ATTACHMENT_TTL_MS,
  attachmentUploadTtlMs: api.ATTACHMENT_UPLOAD_TTL_MS,
  attachmentCreateBurst: api.ATTACHMENT_CREATE_BURST,
  attachmentCreatePerHour: api.ATTACHMENT_CREATE_PER_HOUR,
  attachmentRequestBurst: api.ATTACHMENT_REQUEST_BURST,
  attachmentRequestsPerSecond: api.ATTACHMENT_REQUESTS_PER_SECOND,
});

/** Environment variable name for a limit: maxQueuePerDevice → TACIT_MAX_QUEUE_PER_DEVICE. */
export function envName(limit: keyof Limits): string {
  return 'TACIT_' + limit.replace(/[A-Z]/g, (c) => '_' + c).toUpperCase();
}

/** Reads limit overrides from the environment; throws on a value that is not a positive integer. */
export function limitsFromEnv(env: Record<string, string | undefined>): Partial<Limits> {
  const out: Partial<Limits> = {};
  for (const k of Object.keys(DEFAULT_LIMITS) as (keyof Limits)[]) {
    const v = env[envName(k)];
    if (v === undefined || v === '') continue;
    const n = Number(v);
    if (!Number.isSafeInteger(n) || n <= 0) throw new Error(`${envName(k)} must be a positive integer`);
    out[k] = n;
  }
  return out;
}

export function resolveLimits(partial: Partial<Limits> | undefined): Limits {
  const l: Limits = { ...DEFAULT_LIMITS, ...partial };
  l.maxMessageBytes = Math.min(l.maxMessageBytes, api.MAX_MESSAGE_BYTES);
  l.maxFanoutDevices = Math.min(l.maxFanoutDevices, l.sendBurst, api.MAX_FANOUT_DEVICES);
  l.maxAttachmentBytes = Math.min(l.maxAttachmentBytes, api.ATTACHMENT_FORMAT_MAX_BYTES);
  // Clients read device lists of at most the contract's length.
  l.maxDevicesPerAccount = Math.min(l.maxDevicesPerAccount, api.MAX_DEVICES_PER_ACCOUNT);
  return l;
}
