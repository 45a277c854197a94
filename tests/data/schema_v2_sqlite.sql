-- The schema of imgate commit 72449cc (imgate_meta schema_version 2, before migrations), as its
-- services/db.py made it: Tortoise.generate_schemas(safe=True) on sqlite, tortoise-orm 1.1.9.
-- Captured with tortoise.utils.get_schema_sql (what generate_schemas runs) from that commit's models.
CREATE TABLE IF NOT EXISTS "imgate_meta" (
    "key" VARCHAR(64) NOT NULL PRIMARY KEY,
    "value" VARCHAR(255) NOT NULL
) /* Key\/value facts about the database itself (the schema version). */;
CREATE TABLE IF NOT EXISTS "auth_events" (
    "id" INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
    "uid" VARCHAR(64) NOT NULL,
    "device" VARCHAR(32),
    "kind" VARCHAR(16) NOT NULL,
    "ts" BIGINT NOT NULL
) /* Append-only log of revocations and disables, read by every broker to kick live sessions. */;
CREATE TABLE IF NOT EXISTS "device_tokens" (
    "id" INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
    "uid" VARCHAR(64) NOT NULL,
    "device" VARCHAR(32) NOT NULL,
    "platform" VARCHAR(32) NOT NULL,
    "token_hash" VARCHAR(64) NOT NULL UNIQUE,
    "created_at" BIGINT NOT NULL,
    "expires_at" BIGINT,
    "revoked_at" BIGINT
) /* An access token for one device of one user; only its SHA-256 is stored. */;
CREATE INDEX IF NOT EXISTS "idx_device_toke_uid_906f6c" ON "device_tokens" ("uid");
CREATE TABLE IF NOT EXISTS "users" (
    "uid" VARCHAR(64) NOT NULL PRIMARY KEY,
    "name" VARCHAR(128) NOT NULL,
    "disabled" INT NOT NULL,
    "created_at" BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS "conversations" (
    "id" VARCHAR(140) NOT NULL PRIMARY KEY,
    "kind" VARCHAR(8) NOT NULL,
    "last_seq" BIGINT NOT NULL,
    "last_msg_id" VARCHAR(26),
    "last_ts" BIGINT NOT NULL,
    "created_at" BIGINT NOT NULL,
    "name" VARCHAR(128) NOT NULL,
    "owner" VARCHAR(64)
) /* One conversation: ``d:{a}:{b}`` (1:1) or ``g:{gid}``. ``last_seq`` is the seq counter. */;
CREATE INDEX IF NOT EXISTS "idx_conversatio_last_ts_f4986c" ON "conversations" ("last_ts");
CREATE TABLE IF NOT EXISTS "members" (
    "id" INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
    "uid" VARCHAR(64) NOT NULL,
    "read_seq" BIGINT NOT NULL,
    "joined_seq" BIGINT NOT NULL,
    "left_seq" BIGINT,
    "role" VARCHAR(8) NOT NULL,
    "muted" INT NOT NULL,
    "pinned" INT NOT NULL,
    "conv_id" VARCHAR(140) NOT NULL REFERENCES "conversations" ("id") ON DELETE CASCADE,
    CONSTRAINT "uid_members_conv_id_3e7209" UNIQUE ("conv_id", "uid")
) /* A user's membership and read state in one conversation. */;
CREATE INDEX IF NOT EXISTS "idx_members_uid_9ace15" ON "members" ("uid");
CREATE TABLE IF NOT EXISTS "messages" (
    "id" VARCHAR(26) NOT NULL PRIMARY KEY,
    "conv" VARCHAR(140) NOT NULL,
    "seq" BIGINT NOT NULL,
    "sender" VARCHAR(64) NOT NULL,
    "cid" VARCHAR(64) NOT NULL,
    "type" VARCHAR(16) NOT NULL,
    "text" TEXT,
    "data" JSON,
    "mentions" JSON,
    "ts" BIGINT NOT NULL,
    CONSTRAINT "uid_messages_conv_59263b" UNIQUE ("conv", "seq"),
    CONSTRAINT "uid_messages_sender_85cbd3" UNIQUE ("sender", "cid")
) /* A message, stored once per conversation. ``(conv, seq)`` and ``(sender, cid)`` are unique: */;
CREATE TABLE IF NOT EXISTS "device_presence" (
    "id" INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
    "uid" VARCHAR(64) NOT NULL,
    "device" VARCHAR(32) NOT NULL,
    "online" INT NOT NULL,
    "platform" VARCHAR(32) NOT NULL,
    "ts" BIGINT NOT NULL,
    CONSTRAINT "uid_device_pres_uid_abe94e" UNIQUE ("uid", "device")
);
CREATE INDEX IF NOT EXISTS "idx_device_pres_uid_3631c5" ON "device_presence" ("uid");
CREATE TABLE IF NOT EXISTS "notifications" (
    "id" INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
    "uid" VARCHAR(64) NOT NULL,
    "body" JSON NOT NULL,
    "created_at" BIGINT NOT NULL
) /* One notification for one user (a notification to many users is one row each). */;
CREATE INDEX IF NOT EXISTS "idx_notificatio_uid_75378a" ON "notifications" ("uid");
CREATE TABLE IF NOT EXISTS "notification_cursors" (
    "id" INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
    "uid" VARCHAR(64) NOT NULL,
    "device" VARCHAR(32) NOT NULL,
    "last_id" BIGINT NOT NULL,
    CONSTRAINT "uid_notificatio_uid_53f863" UNIQUE ("uid", "device")
) /* The last notification id handed to one device (deliveries are ranges after it). */;
CREATE TABLE IF NOT EXISTS "message_events" (
    "id" INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
    "message_id" VARCHAR(26) NOT NULL,
    "created_at" BIGINT NOT NULL
) /* A stored message, written in the message's own transaction: the durable queue that push */;
CREATE TABLE IF NOT EXISTS "push_jobs" (
    "id" INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
    "target_id" BIGINT NOT NULL,
    "message_id" VARCHAR(26) NOT NULL,
    "payload" JSON NOT NULL,
    "attempts" INT NOT NULL,
    "next_at" BIGINT NOT NULL,
    "created_at" BIGINT NOT NULL,
    "last_error" VARCHAR(255),
    CONSTRAINT "uid_push_jobs_target__489849" UNIQUE ("target_id", "message_id")
) /* One push to send (the outbox): retried with back-off until sent, dropped, or invalid. */;
CREATE INDEX IF NOT EXISTS "idx_push_jobs_target__1faa51" ON "push_jobs" ("target_id");
CREATE INDEX IF NOT EXISTS "idx_push_jobs_next_at_f2fdff" ON "push_jobs" ("next_at");
CREATE TABLE IF NOT EXISTS "push_targets" (
    "id" INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
    "uid" VARCHAR(64) NOT NULL,
    "platform" VARCHAR(8) NOT NULL,
    "token" VARCHAR(512) NOT NULL,
    "created_at" BIGINT NOT NULL,
    CONSTRAINT "uid_push_target_uid_85ea5e" UNIQUE ("uid", "platform", "token")
) /* Where to push for a user: an FCM registration token, an APNs device token, a webhook URL. */;
CREATE INDEX IF NOT EXISTS "idx_push_target_uid_9bd4a9" ON "push_targets" ("uid");
