# ruff: noqa: N999 (aerich names migration files "{number}_{timestamp}_{name}.py")
"""imgate migration 0_20261130090110_init.

Written by ``python -m services.migrations.make``: aerich's SQL for each dialect; the runner
(services/migrations/runner.py) applies it in one transaction with the others pending.
"""

from tortoise import BaseDBAsyncClient

from services.migrations.dialect import sql_for

RUN_IN_TRANSACTION = True

UPGRADE = {
    "sqlite": r"""
        CREATE TABLE IF NOT EXISTS "aerich" (
            "id" INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
            "version" VARCHAR(255) NOT NULL,
            "app" VARCHAR(100) NOT NULL,
            "content" JSON NOT NULL
        );
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
    """,
    "postgres": r"""
        CREATE TABLE IF NOT EXISTS "aerich" (
            "id" SERIAL NOT NULL PRIMARY KEY,
            "version" VARCHAR(255) NOT NULL,
            "app" VARCHAR(100) NOT NULL,
            "content" JSONB NOT NULL
        );
        CREATE TABLE IF NOT EXISTS "imgate_meta" (
            "key" VARCHAR(64) NOT NULL PRIMARY KEY,
            "value" VARCHAR(255) NOT NULL
        );
        COMMENT ON TABLE "imgate_meta" IS 'Key/value facts about the database itself (the schema version).';
        CREATE TABLE IF NOT EXISTS "auth_events" (
            "id" BIGSERIAL NOT NULL PRIMARY KEY,
            "uid" VARCHAR(64) NOT NULL,
            "device" VARCHAR(32),
            "kind" VARCHAR(16) NOT NULL,
            "ts" BIGINT NOT NULL
        );
        COMMENT ON TABLE "auth_events" IS 'Append-only log of revocations and disables, read by every broker to kick live sessions.';
        CREATE TABLE IF NOT EXISTS "device_tokens" (
            "id" BIGSERIAL NOT NULL PRIMARY KEY,
            "uid" VARCHAR(64) NOT NULL,
            "device" VARCHAR(32) NOT NULL,
            "platform" VARCHAR(32) NOT NULL,
            "token_hash" VARCHAR(64) NOT NULL UNIQUE,
            "created_at" BIGINT NOT NULL,
            "expires_at" BIGINT,
            "revoked_at" BIGINT
        );
        CREATE INDEX IF NOT EXISTS "idx_device_toke_uid_906f6c" ON "device_tokens" ("uid");
        COMMENT ON TABLE "device_tokens" IS 'An access token for one device of one user; only its SHA-256 is stored.';
        CREATE TABLE IF NOT EXISTS "users" (
            "uid" VARCHAR(64) NOT NULL PRIMARY KEY,
            "name" VARCHAR(128) NOT NULL,
            "disabled" BOOL NOT NULL,
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
        );
        CREATE INDEX IF NOT EXISTS "idx_conversatio_last_ts_f4986c" ON "conversations" ("last_ts");
        COMMENT ON TABLE "conversations" IS 'One conversation: ``d:{a}:{b}`` (1:1) or ``g:{gid}``. ``last_seq`` is the seq counter.';
        CREATE TABLE IF NOT EXISTS "members" (
            "id" BIGSERIAL NOT NULL PRIMARY KEY,
            "uid" VARCHAR(64) NOT NULL,
            "read_seq" BIGINT NOT NULL,
            "joined_seq" BIGINT NOT NULL,
            "left_seq" BIGINT,
            "role" VARCHAR(8) NOT NULL,
            "muted" BOOL NOT NULL,
            "pinned" BOOL NOT NULL,
            "conv_id" VARCHAR(140) NOT NULL REFERENCES "conversations" ("id") ON DELETE CASCADE,
            CONSTRAINT "uid_members_conv_id_3e7209" UNIQUE ("conv_id", "uid")
        );
        CREATE INDEX IF NOT EXISTS "idx_members_uid_9ace15" ON "members" ("uid");
        COMMENT ON TABLE "members" IS 'A user''s membership and read state in one conversation.';
        CREATE TABLE IF NOT EXISTS "messages" (
            "id" VARCHAR(26) NOT NULL PRIMARY KEY,
            "conv" VARCHAR(140) NOT NULL,
            "seq" BIGINT NOT NULL,
            "sender" VARCHAR(64) NOT NULL,
            "cid" VARCHAR(64) NOT NULL,
            "type" VARCHAR(16) NOT NULL,
            "text" TEXT,
            "data" JSONB,
            "mentions" JSONB,
            "ts" BIGINT NOT NULL,
            CONSTRAINT "uid_messages_conv_59263b" UNIQUE ("conv", "seq"),
            CONSTRAINT "uid_messages_sender_85cbd3" UNIQUE ("sender", "cid")
        );
        COMMENT ON TABLE "messages" IS 'A message, stored once per conversation. ``(conv, seq)`` and ``(sender, cid)`` are unique:';
        CREATE TABLE IF NOT EXISTS "device_presence" (
            "id" BIGSERIAL NOT NULL PRIMARY KEY,
            "uid" VARCHAR(64) NOT NULL,
            "device" VARCHAR(32) NOT NULL,
            "online" BOOL NOT NULL,
            "platform" VARCHAR(32) NOT NULL,
            "ts" BIGINT NOT NULL,
            CONSTRAINT "uid_device_pres_uid_abe94e" UNIQUE ("uid", "device")
        );
        CREATE INDEX IF NOT EXISTS "idx_device_pres_uid_3631c5" ON "device_presence" ("uid");
        CREATE TABLE IF NOT EXISTS "notifications" (
            "id" BIGSERIAL NOT NULL PRIMARY KEY,
            "uid" VARCHAR(64) NOT NULL,
            "body" JSONB NOT NULL,
            "created_at" BIGINT NOT NULL
        );
        CREATE INDEX IF NOT EXISTS "idx_notificatio_uid_75378a" ON "notifications" ("uid");
        COMMENT ON TABLE "notifications" IS 'One notification for one user (a notification to many users is one row each).';
        CREATE TABLE IF NOT EXISTS "notification_cursors" (
            "id" BIGSERIAL NOT NULL PRIMARY KEY,
            "uid" VARCHAR(64) NOT NULL,
            "device" VARCHAR(32) NOT NULL,
            "last_id" BIGINT NOT NULL,
            CONSTRAINT "uid_notificatio_uid_53f863" UNIQUE ("uid", "device")
        );
        COMMENT ON TABLE "notification_cursors" IS 'The last notification id handed to one device (deliveries are ranges after it).';
        CREATE TABLE IF NOT EXISTS "message_events" (
            "id" BIGSERIAL NOT NULL PRIMARY KEY,
            "message_id" VARCHAR(26) NOT NULL,
            "created_at" BIGINT NOT NULL
        );
        COMMENT ON TABLE "message_events" IS 'A stored message, written in the message''s own transaction: the durable queue that push';
        CREATE TABLE IF NOT EXISTS "push_jobs" (
            "id" BIGSERIAL NOT NULL PRIMARY KEY,
            "target_id" BIGINT NOT NULL,
            "message_id" VARCHAR(26) NOT NULL,
            "payload" JSONB NOT NULL,
            "attempts" INT NOT NULL,
            "next_at" BIGINT NOT NULL,
            "created_at" BIGINT NOT NULL,
            "last_error" VARCHAR(255),
            CONSTRAINT "uid_push_jobs_target__489849" UNIQUE ("target_id", "message_id")
        );
        CREATE INDEX IF NOT EXISTS "idx_push_jobs_target__1faa51" ON "push_jobs" ("target_id");
        CREATE INDEX IF NOT EXISTS "idx_push_jobs_next_at_f2fdff" ON "push_jobs" ("next_at");
        COMMENT ON TABLE "push_jobs" IS 'One push to send (the outbox): retried with back-off until sent, dropped, or invalid.';
        CREATE TABLE IF NOT EXISTS "push_targets" (
            "id" BIGSERIAL NOT NULL PRIMARY KEY,
            "uid" VARCHAR(64) NOT NULL,
            "platform" VARCHAR(8) NOT NULL,
            "token" VARCHAR(512) NOT NULL,
            "created_at" BIGINT NOT NULL,
            CONSTRAINT "uid_push_target_uid_85ea5e" UNIQUE ("uid", "platform", "token")
        );
        CREATE INDEX IF NOT EXISTS "idx_push_target_uid_9bd4a9" ON "push_targets" ("uid");
        COMMENT ON TABLE "push_targets" IS 'Where to push for a user: an FCM registration token, an APNs device token, a webhook URL.';
    """,
}

DOWNGRADE = {
    "sqlite": r"""

    """,
    "postgres": r"""

    """,
}


async def upgrade(db: BaseDBAsyncClient) -> str:
    return sql_for(UPGRADE, db)


async def downgrade(db: BaseDBAsyncClient) -> str:
    return sql_for(DOWNGRADE, db)


MODELS_STATE = (
    "eJztXV1T4zYX/iua3BRmwhbC50uvAsu2dBfY2WXbzmw7RrGVRI0jeSUZyFD++yvJdmwntr"
    "FDPo2uINI5sv1YPuc8OsfyU2NIHeTyd23EsN1vnIKnBoFDJP+Z6GmCBvS8uF01CNhxtSiM"
    "ZTpcMGgL2dqFLkeyyUHcZtgTmBLZSnzXVY3UloKY9OImn+AfPrIE7SHRR0x2fP9HNmPioE"
    "fEo5/ewOpi5DqpU8WOOrZut8TI022XRHzQgupoHcumrj8ksbA3En1KxtKYCNXaQwQxKJAa"
    "XjBfnb46u/A6oysKzjQWCU4xoeOgLvRdkbjcjhW3NSzr+ubW+npxa1mNCgDZlChw5alyff"
    "U9dQo7rb2D44OT/aODEymiT3PccvwcHDoGJlDU8FzfNp51PxQwkNAYx6DeI8bVKU0he96H"
    "LBvahMoEvvLEJ/GN0CwCOGqIEY5n1TIgHsJHy0WkJ9Sj0To8LAD0j/aX89/aX7ak1LY6JJ"
    "WPQfB0XIddraBPoR6jrB6qCgiH4jVEd293twS6UioXXd2XRlceUaDg0U4j/PvXm+tshBMq"
    "Eyg72BbgP+BiPmUrNgDtAnAVGGrkIec/3CSmW1ftvybhPv90c6bBoVz0mB5FD3AmoVcGuj"
    "tIWBPV0IH24AEyx5rqoS2aJzvdNWwNJ1sggT0NpLpidX2hy3rfuSRdmuXMwp5CZ4aHPXlX"
    "rSESsJRHa3xEo5/voesjKWALDmCH+gJIHwaUbe1AjgAWHLldsKUaud1HQwhCW7n9rjFx++"
    "Yx3it86QCNqhikUHw+Bmm1/jRljo4OSlijo4NcY6S6XvCv6hZX8q6RQg2t/9x865qYoLYv"
    "+hf3yo9khdTjzuKoWopZSMnxcoao7XmIODuUuCPg0h6gXcDQPbWhEpB2hDjAwVwNz5uyBz"
    "qgMwLyAGwEOowOEAOCggG2B9LH3UvDgriyKHzaQi3yQHOmAWe491aYwP9arf3949bu/tHJ"
    "4cHx8eHJ7pgSTHcVcYOzy18VPUg9aC/zBT8L/nxr5meiXwdbNi/XEUProHtsV/IVscZMAI"
    "ezdz3x3W+VwHe/lYuv6krjO5DXVSnoCeVrOHn3jsqwsKN8EnY0CW7gvcpb5UD+Zau8CdAu"
    "zTCvSdjzXpudW+niSVbgk+wuDH0C8yWDAClZNvghANq2jCSA1gJdygAlkjPpoVSIon75HL"
    "FfgA5cJIcCX39r77QOjwDmgAvKkJMR68xvXBParPETtDmhzeaT4hVGNmvnIhYc2nguFNJk"
    "DatAnNRZHsiNxoZCrP2C1Ye8XwXktJZZP3vRVNgMKSgsmLGcX+QK03omrqzoFeMbgB49zB"
    "CvfAPSejPdgHXjoyvBXy2xDWZ4ANJ6Bv8N5FXfuKYLU4RKtzeLmJQiJuUY1EIqM1YZOdfQ"
    "G+ZTFP23AtKRfO3iu73WSZkVrNZJ/hKW6pugKUE2I4uEU+oiSHK4SkJtAuiO1FsU0uOW5Z"
    "YRnN3cfFIjj8sIzi4nbOr1t6uzCwm+hl4KYZHj6kys93Z93TklqpYBhkBN+bxUf6HvsxOS"
    "JVcRbwgCSbVTcHfnnD7B59OnzvPdHdjaO93bBpTJ5t7pUw87svGd/OFCLiyOfkgRzHWthv"
    "whR/KJQGx6UXFxh5nzGmO+A6mpp947KFWGdlBQhnaw+5KzNvmmMd5lnHW+q55y1NEDUs1t"
    "JLWW5zR2N95jTCE/5D2rmhmZUKtftrpVJqHayk+otqYSqhqyqlnVhNKiZviU0a7XBDcx6Y"
    "pvgKG4i6S49IEEa0ll4R0r1M9mz2e5pgKfSpAcNOyEK3YTJiZU/PDxC3LH5GcC+5AiXelB"
    "NtCwPEeTLGoNZ8rzIglniFYG1YxxzCeZiRtWokhFF4r8xEGo1ceerpbVNbJcyBsFMNEFJU"
    "l2mFGUMvs4GQTxu2bKulNGYf+YmpT18X6mJmU5tjqdZ4NOdQ6Z1DIccrYI71+KCZoB+7Se"
    "QX9GBo+6s6ydJLRMbnnm3D51K3GbSH6J3GY4DoY2blVw6IvKubuxjkncVUjceZiQylDHSg"
    "brKklSGbRXXG1NqNQwlzC33M0Uc0+DPo34B8oQ7pGPaKRxv5QnCUlmlXJOEnPDcM/j6bKZ"
    "wYcxV0zON4mBvHIUTObz9tfz9vuLxvNqUsxXiHOo/XwG5Q+6msWcXwuVJv2hfDN8GUQScx"
    "sBD7E0Owd3d1uqoamSutt3d5rRyzaO5E1mTWBjR7cyBIJ5cJqxLrCoQ/1NVLa5ixkXoIfv"
    "EQc96O10GUKAMqkjT6AZJqTlwA7ADhp6VO2kAdSgue/2xmsPKoaUd+17IzgJ1WS/djniza"
    "Wv55Vtyl93yDaAxS7H+Jtif5P06pUJ2NJZb+3IV2xwyk7qWKOG03oBr25UjFJrG6HOH1qN"
    "TgVsI/kagruAV9fRY0ay/1a25oAbytchI1qA5e3FX7cpDju1X9hwFPZ8urn+NRKf3ERsos"
    "QaBvttpbHO36ctkn/VJm2bg/nc9mhLrYvJ8DyqjS2Le1LHYD879mZbjLdT0h7se/FZzgak"
    "VoVyd8YYSzRLbI7hJYXn+nLX9yhbHL5rbyoC1mZCNwuYuakIMLtULAXg+W+hQImLSQbAhW"
    "mjWMmkjaqk6MyOIAvfEcTEdm8mtrumAnexnfu6Yqq/MK4jCckKrysm1ca7k6nyULAF052C"
    "AnkZI93J1QuESpLRB4Cg3c/YiHruo5sN0Nb4eTKh5SpCyw51MvZbz19+ieTNtwlesfZiXu"
    "Uy/loBde4zTjPf/MiQKu27LVsrlHTht30E1MuZaWeKHdCHckY4yq0mthvdkkfG94hhxHV1"
    "BoOkp/7tCumRschw4gsY3ywZbdJztzl+vVaJWbNmtGCSrd9or2o+EkrmNZGN891hcWbuh1"
    "VS/YX+OiyTrPZ5laimclxj+cCwEIiody1V6WPY/pOkvg+yRfpOLgfU2/vorzf5TB0eyInj"
    "I9kCBfD8YPvXiSLOhRznb7KlqjxdqFw5R5DZfaBnrTzstioP5f4QvQPvdZFuWDgatprty9"
    "f+CS3y8tFkr+bs01o1dEnz35nF8Mq365s+SxP7O+1kuaWoq9AjKRNt/Us7FVZ+lYrib6oa"
    "NfgWIPVFhz5unwKG5O2RVvwBiz5QF7hDu13gE4FdJS6awGHU85DTVLvMYXIPXZzx8YuFHS"
    "WTQgrI5M/Q4CTMjyGTa/OwFbmZ1O2rkPxKqi1tb6qa3A3j5Jfu5D04cinMQDl/0T6hYtbt"
    "X7FuDyULGnpZ2fVc65JUqQ3jf+U33xNbqqFHUTlaTSgZcz2ruTZUYdW7naiVQMQYrfTiV1"
    "qrDu951Ps7zIp63eoAs5FDzMLe5ovcLIhTS9KzPyWpQYo1afak6magLow5BZCAD+dXkjr1"
    "sBokLJ0ZINJUXe3P1zzKxUWt4AF1+pQOwLcvn6Yp2kKPVJTpS9YE6gEMT1snS7cpSb86Ff"
    "NsTmnt0kCe805OIvp2bFl4xwo1xPZwr0xSVUrl4qv7TGC6cnO90mjp+f9cpfpj"
)
