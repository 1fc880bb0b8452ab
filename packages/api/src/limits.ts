/**
 * Limits shared by clients and server. Every value is the server's default; an operator may
 * configure the server differently (see docs/OPERATIONS.md), and the server enforces its own
 * configured values. Clients use these to avoid sending what the server would refuse.
 *
 * Each limit is checked before anything is allocated for the input it bounds.
 */

/** 1 KiB. */
export const KiB = 1024;

/**
 * Largest ciphertext body (decoded bytes) of one message. 96 KiB holds any text message with room
 * to spare; attachments belong in a separate blob store (not yet built), so a larger cap would
 * only let one sender fill a recipient's mailbox faster.
 */
export const MAX_MESSAGE_BYTES = 96 * KiB;

/**
 * Largest WebSocket frame the server reads. A `send` frame carries the body as base64
 * (4/3 of 96 KiB = 128 KiB) plus a small JSON envelope; 136 KiB leaves 8 KiB for that.
 * A larger frame closes the connection (close code 1009) before it is buffered.
 */
export const MAX_FRAME_BYTES = 136 * KiB;

/**
 * Largest HTTP request body. Registration is the largest request: 100 Kyber pre-keys of
 * 1569 + 64 bytes each, base64-encoded, are about 220 KiB; 512 KiB leaves room for the rest.
 */
export const MAX_REQUEST_BODY_BYTES = 512 * KiB;

/** At most this many keys in one list (one-time EC pre-keys, one-time Kyber pre-keys) per upload. */
export const MAX_KEYS_PER_LIST = 100;

/**
 * One-time keys of each kind the server holds for one device at most, counting keys added by
 * POST /v1/keys/one-time (a replacing upload holds at most MAX_KEYS_PER_LIST anyway). Clients
 * keep 100 in stock and add theirs in parts; twice that leaves room for a retried part without
 * letting one device fill the key directory (a Kyber key row is about 1.6 KiB).
 */
export const MAX_ONE_TIME_KEYS_HELD = 2 * MAX_KEYS_PER_LIST;

/**
 * Messages the server pushes to one connection before it waits for acknowledgements. Bounds
 * the memory a slow reader can pin on the server; 256 is far more than a chat client needs to
 * keep its pipeline full.
 */
export const MAX_UNACKED_PER_CONNECTION = 256;

/**
 * `send` frames one connection may have outstanding (received by the server, `sent` not yet
 * returned). Beyond this a send is refused with TOO_MANY_IN_FLIGHT; a client should wait for
 * `sent` replies. Bounds the server's write buffer per connection.
 */
export const MAX_PENDING_SENDS_PER_CONNECTION = 256;

/**
 * Envelope ids one batched `ack` frame (`{"type":"ack","ids":[...]}`) may name. A connection has
 * at most MAX_UNACKED_PER_CONNECTION messages unacknowledged, so a larger list could only repeat
 * ids or name ids not in flight; bounding it bounds the work one frame can cause.
 */
export const MAX_ACK_IDS = MAX_UNACKED_PER_CONNECTION;

/**
 * Sends one `sent-batch` frame (`{"type":"sent-batch","sent":[...]}`) answers at most. A connection
 * has at most MAX_PENDING_SENDS_PER_CONNECTION sends awaiting `sent`, so one commit never answers
 * more for one socket; a frame of 256 entries with 64-character ids is about 32 KiB.
 */
export const MAX_SENT_BATCH = MAX_PENDING_SENDS_PER_CONNECTION;

/**
 * Sustained messages per second one device may send (token bucket refill rate). A message to a
 * team of 10 people with 3 devices each is 30 sends; 100/s sustained never limits a human.
 */
export const SEND_RATE_PER_SECOND = 100;

/** Burst size of the per-device send bucket: one large fan-out at once. */
export const SEND_BURST = 300;
/**
 * Ephemeral sends (`ephemeral: true`: typing indicators) per connection per second, and the
 * burst. Nothing is stored, but each is pushed to live sockets: a typing indicator goes at most
 * every few seconds per conversation (the SDK sends one per TYPING_SEND_INTERVAL_MS), so a person
 * typing in several conversations stays far below this, while a client that floods is refused
 * (RATE_LIMITED for that frame; the socket stays open).
 */
export const EPHEMERAL_SENDS_PER_SECOND = 5;
export const EPHEMERAL_BURST = 20;

/**
 * Recipient devices one multi-recipient (`send-multi`) frame may address, over all its accounts.
 * The frame stores one message per device and takes as many tokens from the sender's send bucket,
 * so it can never need more than a full bucket (SEND_BURST); the device check and the inserts run
 * in one transaction, which this also bounds. A group with more devices sends several frames,
 * each covering whole accounts. Beyond it: TOO_MANY_RECIPIENTS for that send.
 */
export const MAX_FANOUT_DEVICES = 300;

/**
 * Ciphertext bytes one `send-multi` frame may store in all: a shared body times its devices, or
 * the sum of the per-device bodies. A group text (a few hundred bytes) to MAX_FANOUT_DEVICES
 * devices is about 100 KiB; 1 MiB leaves room for longer texts while keeping a fan-out's storage
 * per send token (about 3.4 KiB) below a single send's (MAX_MESSAGE_BYTES), so fan-out never lets
 * a sender fill mailboxes or the disk faster. Beyond it: MESSAGE_TOO_LARGE for that send.
 */
export const MAX_FANOUT_BYTES = 1024 * KiB;

/**
 * Sustained frames per second on one connection (all frame kinds). Exceeding the burst closes
 * the connection with RATE_LIMITED: a flood is not a chat client.
 */
export const FRAME_RATE_PER_SECOND = 1000;

/** Burst of the per-connection frame bucket. */
export const FRAME_BURST = 2000;

/**
 * Bundle fetches per (requesting account, target user), shared by the account's devices: burst. A client fetches a bundle only to
 * start sessions, so a handful suffices; the limit stops draining another user's one-time keys.
 */
export const BUNDLE_FETCH_BURST = 10;

/** Bundle fetches per (requesting account, target user): sustained per minute. */
export const BUNDLE_FETCH_PER_MINUTE = 6;

/** Registrations (new accounts and new devices) per client IP: burst. */
export const REGISTRATION_BURST = 10;

/** Registrations per client IP: sustained per hour. */
export const REGISTRATION_PER_HOUR = 20;

/**
 * Devices one account may have (Signal's number: a phone plus five linked devices). Every sender
 * encrypts once per device of the recipient and of its own account, so this bounds the cost of a
 * message; the server's limit (TACIT_MAX_DEVICES_PER_ACCOUNT) may only lower it.
 */
export const MAX_DEVICES_PER_ACCOUNT = 6;

/**
 * A link token (POST /v1/devices/link-token) is valid this long, once. Long enough to type a code
 * by hand on the other device; short, since whoever holds it can add a device to the account.
 */
export const LINK_TOKEN_TTL_MS = 10 * 60_000;
/** Longest link token accepted (they are 43 characters). */
export const LINK_TOKEN_MAX_LENGTH = 128;
/**
 * A provisioning channel stays open this long, then the server closes it. Bounds how long an
 * unauthenticated socket may be held; the new device opens another to try again.
 */
export const PROVISIONING_CHANNEL_TTL_MS = 10 * 60_000;
/** Longest provisioning channel address accepted (they are 22 characters). */
export const PROVISIONING_ADDRESS_MAX_LENGTH = 64;
/**
 * Largest provisioning message (decoded): the identity key pair, username and token, plus the
 * contacts and group states synced to the new device. Senders leave out group states past it.
 */
export const MAX_PROVISIONING_MESSAGE_BYTES = 64 * KiB;
/** Provisioning channels open on one server node at once (each is an unauthenticated socket). */
export const MAX_PROVISIONING_CHANNELS = 1_000;
/** Provisioning channels one client address may hold open at once. */
export const MAX_PROVISIONING_CHANNELS_PER_ADDRESS = 4;
/** Longest device name, in UTF-16 code units. */
export const MAX_DEVICE_NAME_LENGTH = 64;

/** Authenticated WebSocket connections one account may hold at once (over all its devices). */
export const MAX_CONNECTIONS_PER_ACCOUNT = 10;

/**
 * Messages waiting for one device. A device that never connects cannot make the server store
 * without bound; further sends to it are refused with MAILBOX_FULL until it drains.
 */
export const MAX_QUEUE_PER_DEVICE = 10_000;

/** Default lifetime of an undelivered message: 30 days. Then it is deleted unread. */
export const MESSAGE_TTL_MS = 30 * 24 * 60 * 60 * 1000;
/**
 * Shortest queue time a send may ask for (`ttlMs` on `send` and `send-multi`): one second, the
 * shortest disappearing-message timer. A send may only shorten its stay below MESSAGE_TTL_MS
 * (a message of a disappearing conversation stays queued no longer than its timer), never extend it.
 */
export const MIN_MESSAGE_TTL_MS = 1_000;

/** A connection must authenticate within this time or is closed with AUTH_TIMEOUT. */
export const AUTH_TIMEOUT_MS = 10_000;

/** Lifetime of a WebSocket ticket. Short: it travels in a URL and may appear in access logs. */
export const TICKET_TTL_MS = 30_000;

/** Username length bounds (after case folding). */
export const USERNAME_MIN_LENGTH = 3;
export const USERNAME_MAX_LENGTH = 32;

/**
 * Device secret length bounds in bytes. 32 random bytes are beyond guessing; the upper bound
 * caps the work of hashing attacker-chosen input.
 */
export const DEVICE_SECRET_MIN_BYTES = 32;
export const DEVICE_SECRET_MAX_BYTES = 64;

/** Invite codes are this many characters long (see INVITE_CODE_PATTERN). */
export const INVITE_CODE_MAX_LENGTH = 64;

/** Longest client-chosen correlation id on a frame (`send.id`, `ping.id`). */
export const MAX_CLIENT_ID_LENGTH = 64;

/** Device ids are 1..MAX_DEVICE_ID (libsignal's device ids fit in 7 bits on the wire; keep small). */
export const MAX_DEVICE_ID = 127;

/** Registration ids: libsignal generates 1..16380 (14 bits). */
export const MAX_REGISTRATION_ID = 0x3fff;

/** Pre-key ids are unsigned 24-bit integers in Signal's clients; we accept any u32. */
export const MAX_KEY_ID = 0xffff_ffff;

/** Serialized X25519 public key: type byte 0x05 then 32 bytes. */
export const CURVE_PUBLIC_KEY_BYTES = 33;
export const CURVE_KEY_TYPE = 0x05;

/** Serialized Kyber1024 public key: type byte 0x08 then 1568 bytes. */
export const KYBER_PUBLIC_KEY_BYTES = 1569;
export const KYBER_KEY_TYPE = 0x08;

/** XEdDSA signature length. */
export const SIGNATURE_BYTES = 64;

/**
 * Invite codes one admin request may create (POST /v1/admin/invites). An admin invites a few
 * people at a time; the bound keeps one request from filling the invites table.
 */
export const MAX_INVITES_PER_REQUEST = 20;

/**
 * Accounts listed by GET /v1/admin/accounts and usernames by GET /v1/directory, at most (sorted
 * by username; beyond it the list is cut and says so). tacit is for small teams; a bigger
 * directory would want paging and search instead of one list.
 */
export const MAX_LISTED_ACCOUNTS = 1000;
/** 1 MiB. */
export const MiB = 1024 * KiB;

/**
 * Largest file (plaintext bytes) one attachment may carry; the server refuses a larger upload
 * (ATTACHMENT_TOO_LARGE) before it stores a byte, by its declared blob length. 100 MiB covers
 * screen recordings and documents a team shares; every byte of it is kept for ATTACHMENT_TTL_MS
 * and sent to every recipient device, so a higher cap mostly buys disk use and slow downloads.
 */
export const MAX_ATTACHMENT_BYTES = 100 * MiB;

/**
 * Blob bytes one account may hold on the server at once (unexpired uploads, finished or not).
 * 1 GiB is ten files at the cap, or thousands of screenshots, per month of expiry; it bounds the
 * disk one account (or one stolen device secret) can fill. Beyond it: QUOTA_EXCEEDED.
 */
export const ATTACHMENT_QUOTA_BYTES = 1024 * MiB;

/**
 * How long a finished attachment stays downloadable: 30 days, as undelivered messages
 * (MESSAGE_TTL_MS) — a message that waited its full time still finds its file. Longer keeps more
 * bytes on the server; recipients who have not downloaded by then get NOT_FOUND.
 */
export const ATTACHMENT_TTL_MS = 30 * 24 * 60 * 60 * 1000;

/**
 * An upload must be finished within this time of its creation, or it is deleted with what it
 * received so far. A day lets an interrupted upload resume after a night offline, without letting
 * abandoned uploads hold their account's quota for a month.
 */
export const ATTACHMENT_UPLOAD_TTL_MS = 24 * 60 * 60 * 1000;

/** Attachments one device may create: burst. A user dropping a folder of screenshots at once. */
export const ATTACHMENT_CREATE_BURST = 50;

/** Attachments one device may create: sustained per hour (a busy day's worth of files). */
export const ATTACHMENT_CREATE_PER_HOUR = 300;

/**
 * Other attachment requests (upload pieces, status, downloads, deletes) per device: burst. The
 * SDK uploads a file in about 20 pieces (256 KiB to 4 MiB each, MAX_UPLOAD_PIECE_BYTES), so a
 * file at the cap is about 30 requests; a download is one, plus one per resume. 500 lets a user
 * send a folder of files at once; a device cannot keep the server busy with tiny requests.
 */
export const ATTACHMENT_REQUEST_BURST = 500;

/** Other attachment requests per device: sustained per second. */
export const ATTACHMENT_REQUESTS_PER_SECOND = 20;
