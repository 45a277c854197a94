# ruff: noqa: N999 (aerich names migration files "{number}_{timestamp}_{name}.py")
"""imgate migration 8_20261201031848_attachments.

Written by ``python -m services.migrations.make``: aerich's SQL for each dialect; the runner
(services/migrations/runner.py) applies it in one transaction with the others pending.

Attachments (issue 15): the ``uploads`` table (the attachment service's: every declared upload,
its owner and what was declared, and a tombstone once deleted), and the upload keys an
attachment message refers to (``messages.file_key``, ``thumb_key``: who may download, and
whether a recall frees them).
"""

from tortoise import BaseDBAsyncClient

from services.migrations.dialect import sql_for

RUN_IN_TRANSACTION = True

UPGRADE = {
    "sqlite": r"""
        CREATE TABLE IF NOT EXISTS "uploads" (
        "key" VARCHAR(64) NOT NULL PRIMARY KEY,
        "owner" VARCHAR(64) NOT NULL,
        "name" VARCHAR(255) NOT NULL,
        "mime" VARCHAR(127) NOT NULL,
        "size" BIGINT NOT NULL,
        "sha256" VARCHAR(64) NOT NULL,
        "created_at" BIGINT NOT NULL,
        "used" INT NOT NULL,
        "gone_at" BIGINT
        );
        CREATE INDEX IF NOT EXISTS "idx_uploads_owner_1f4aff" ON "uploads" ("owner");
        CREATE INDEX IF NOT EXISTS "idx_uploads_created_5067ce" ON "uploads" ("created_at");
        CREATE INDEX IF NOT EXISTS "idx_uploads_gone_at_b1e9ae" ON "uploads" ("gone_at");
        ALTER TABLE "messages" ADD "file_key" VARCHAR(64);
        ALTER TABLE "messages" ADD "thumb_key" VARCHAR(64);
        CREATE INDEX "idx_messages_thumb_k_461581" ON "messages" ("thumb_key");
        CREATE INDEX "idx_messages_file_ke_f475b4" ON "messages" ("file_key");
    """,
    "postgres": r"""
        CREATE TABLE IF NOT EXISTS "uploads" (
        "key" VARCHAR(64) NOT NULL PRIMARY KEY,
        "owner" VARCHAR(64) NOT NULL,
        "name" VARCHAR(255) NOT NULL,
        "mime" VARCHAR(127) NOT NULL,
        "size" BIGINT NOT NULL,
        "sha256" VARCHAR(64) NOT NULL,
        "created_at" BIGINT NOT NULL,
        "used" BOOL NOT NULL,
        "gone_at" BIGINT
        );
        CREATE INDEX IF NOT EXISTS "idx_uploads_owner_1f4aff" ON "uploads" ("owner");
        CREATE INDEX IF NOT EXISTS "idx_uploads_created_5067ce" ON "uploads" ("created_at");
        CREATE INDEX IF NOT EXISTS "idx_uploads_gone_at_b1e9ae" ON "uploads" ("gone_at");
        ALTER TABLE "messages" ADD "file_key" VARCHAR(64);
        ALTER TABLE "messages" ADD "thumb_key" VARCHAR(64);
        CREATE INDEX IF NOT EXISTS "idx_messages_file_ke_f475b4" ON "messages" ("file_key");
        CREATE INDEX IF NOT EXISTS "idx_messages_thumb_k_461581" ON "messages" ("thumb_key");
    """,
}

DOWNGRADE = {
    "sqlite": r"""
        DROP INDEX IF EXISTS "idx_messages_file_ke_f475b4";
        DROP INDEX IF EXISTS "idx_messages_thumb_k_461581";
        ALTER TABLE "messages" DROP COLUMN "thumb_key";
        ALTER TABLE "messages" DROP COLUMN "file_key";
        DROP TABLE IF EXISTS "uploads";
    """,
    "postgres": r"""
        DROP INDEX IF EXISTS "idx_messages_thumb_k_461581";
        DROP INDEX IF EXISTS "idx_messages_file_ke_f475b4";
        ALTER TABLE "messages" DROP COLUMN "file_key";
        ALTER TABLE "messages" DROP COLUMN "thumb_key";
        DROP TABLE IF EXISTS "uploads";
    """,
}


async def upgrade(db: BaseDBAsyncClient) -> str:
    return sql_for(UPGRADE, db)


async def downgrade(db: BaseDBAsyncClient) -> str:
    return sql_for(DOWNGRADE, db)


MODELS_STATE = (
    "eJztXdty2zgS/RWUXsauUjK2LF/W+2Q7yUwmiZ1ynNmpykzJEAlJiCiAIUBfNut/XwC8Sy"
    "RNyKJM0XhKDHST1CHY3QdoNH52ZtRGDnt9gjxsTTrH4GeHwBkS/5nr6YIOdN2kXTZwOHSU"
    "KExkhox70OKidQQdhkSTjZjlYZdjSkQr8R1HNlJLCGIyTpp8gn/4aMDpGPEJ8kTHt39EMy"
    "Y2ukMs+tOdDkYYOXbmUbEt763aB/zeVW3vCX+nBOXdhgOLOv6MJMLuPZ9QEktjwmXrGBHk"
    "QY7k5bnny8eXTxf+zugXBU+aiASPmNKx0Qj6Dk/93OEgaesMBucXV4Mvb68Gg44GQBYlEl"
    "zxqEz9+rF8hFe93f5h/2jvoH8kRNRjxi2HD8GtE2ACRQXP+VXnQfVDDgMJhXEC6g3ymHyk"
    "BWTPJtDLhzalMoevePB5fCM0ywCOGhKEk1G1Dohn8G7gIDLm8tPo7e+XAPrnyeXZ7yeXW0"
    "JqW96Sis8g+DrOw65e0CdRT1CWH5UGwqF4C9Hd3dmpgK6QKkRX9WXRFXfkKPi0swj/8eXi"
    "PB/hlMocyja2OPgfcDBbsBUbgHYJuBIMeeUZYz+cNKZbn07+mof77OPFqQKHMj721FXUBU"
    "4F9NJAj6YpayIbhtCa3kLPHiz00B4tkl3smvVm8y2QwLECUv5i+ftCl/Vm+J6MaJ4zC3tK"
    "nRmejcVbHcwQh5U8WucDuv/1Bjo+EgIWZwAOqc+B8GFA2tYhZAhgzpAzAluykVkTNIMgtJ"
    "Xbrztzr28V13uCL52iex2DFIqvxiA9rz/NmKODfgVrdNAvNEay6xH/Kl+xlneNFFpo/Vfm"
    "Wxtigk58Pnl7I/1IXkgdd5ZH1UJsgKQcq2aITlwXEfsVJc49cOgY0BHw0A21oBQQdoTYwM"
    "ZMXp51RQ+0wfAeiBt492Do0SnyAKdgiq2p8HE3wrAgJi0KW7RQdd5oxTTgFI9fChP4V6+3"
    "t3fY29k7ONrvHx7uH+3ElGCxq4wbnL7/TdKDzIf2OF/w8+AvtmZ+LvptsGWrch0JtDa6wZ"
    "aWr0g0lgI4HL3NxHevVwHfvV4hvrIri+9U/C6toCeUb+Hg3T2owsIOiknYwTy4gfeqbpUD"
    "+cet8iZAuzbD3JCw540yO1fCxZO8wCfdXRr6BOZLBAFCsmrwQwC0LBFJAKUFRtQDlAjOpC"
    "4lQxT5l8+Q92+gAhfBocCX309e9fYPAGaAceohOyfWWd11TWjT4C9oc0KbzSfFzxjZNM5F"
    "1BzauA7kwmTNdCBO66wP5E5nQyFWfmEwgWyiA3JWy8yfPWoqLA9JKAYwZzq/zBVm9Uxcqe"
    "kVkxeA7lzsIab9ArJ6S72Ax/loW4OSBH45wzZdYvxn9WqCv6XDvyG06itTbGGBT6n2bhmR"
    "krykGoGqJTHjOQPnFjrDYoai/tVAOpJvXXi32zuqMoHVOyqewZJ9cywlWMzI4+CUOgiSAq"
    "qSUpsDeij06kI6bllvFsHpxcVHeeU4i+D0/ZxNPf/66fStAF9BL4QwL3B1JtR7ub7ujBKZ"
    "ygBDoBZ8Xqa/1PdZKcmKk4gXBIG02jG4vraPf8KH45/Dh+trsLV7vLsNqCeax8c/x9gWja"
    "/FHw5kfMDQDyGCmUrVEH+IK/mEI29xTrG+26x4irHYgbTUU+/2K2Wh9Uuy0Po7jzlrs9wU"
    "413FWRe76gVHHX0gem4jrbU+p7Gz8R5jAfkZGw/0zMicWvsWq3tV1lN7xeupvYX1VAWZ7q"
    "JqSsmM8OVGuAlKn/kFGI5bJ8eltySYTKoKb6zQPqO9mvkaDUKVYjloNgyn7OZMTKj47sMl"
    "cmL2M4d9yJE+qYtsoGF5iAZZ1BqOlIc6GWeIVg7XTHAsZpmpF1YhSUUlivzCQKg1wa7Kll"
    "U5soyLFwUwUQklaXqYk5Sy/HVyGOI3RZVVpwjD/jE5Kc3xfiYnZT22OrvQBm19EpnWMiH2"
    "chHed4oJWgL7rJ5Bf0kKj0bLTJ6ktMzi8tKL+9TR4jaR/Bq5zSwOhjZuWnDmc+3Fu1jHrN"
    "xprNy5mBBtqBMlg7XOKqkI2jWnW1MqLVxMWNnizQJzz4K+iPg76iE8Jh/QvcL9vXhISHKz"
    "lAtWMTcM9yKeLpo9eBtzxfR4ExiIX46CwXx28uXs5M3bzsPzrDF/QoxB5edzKH/Q1S3n/E"
    "qoMukP5bvhZhBBzC0EXORl2Tm4vt6SDV25qrt9fa0YvWhjSLxkrwssbKtWD4FgHBznzAvU"
    "dau/iVxuHmGPcTDGN4iBMXRfjTyEAPWEjniAbrgiLS5sA2yjmUtlJQ0gL1q4tzeZe5AxpH"
    "hr3zrBQ8gm66nTES9u/XpVy03F8w75BrDc5Rh/U+5v0l5dm4CtnfW2jnwlBqfqoE40Wjis"
    "a9i6oRmltjZCXT20Ch0NbCP5FoJbw9Z1dJez2H8lWgvADeXbsCJaguXV27+uMhx2oV7Y7D"
    "7s+Xhx/lskPl9EbC7HGgb1trJYF9dpi+SfVKRtczBfWY22zLyYCM+j5NiquKd1DPbLY2/K"
    "Yqx9/5zr5JS2Kx7psYIZ5ssPcwWiYPxaixspnZpc6eYz9NS+XBsvk5eYUTMrd8ualRF20E"
    "CzaGZap3UDvAaOM/FnQ12MM0oG5FyQG7LlKygL9Vl4ESQXTQoLR8US3Qq1o9y08Eo3P3+L"
    "kqnCUjQmYa5BhtkkzK3fPpsiTjVXGKLEwSQH4NKsikTJZFXoZLCYglm1F8wyUx9r3rpGid"
    "Y5LpH82pzfpm2cakjgfE45HmGrsFZCpr80aCYpSY1aCWm1uDKq3JoCtmC2k1Mgfsa96mSy"
    "eoGU9OgtQNCa5ByCsfKrm+KrjTZWJm5ff9w+pLbWhHgkb85FesKEuNlG/nJrG6X98ZnvMZ"
    "q76zRHqrLvHlhKoaILv5ogICtDZJ0ptsEEihFhS7eaKnW+Je6Mb5CHEVOZoR4kY/nfERce"
    "GfMcJ17D9c183CZ9d5vj11uVFGYm5GqewVDldHTNR0rJbFHdON8dbgwpPNQt01/qr8MtGn"
    "pHu0X7OeL9Hbce5hwRWedBbrsI238R1PdWtAjfycQFVW1BdXKk78nbAzFwfCRaIAeuH5Se"
    "n9tAUst9/iZbcoeJA6UrZwh61gSoUStuuy23pjB/hl6DN2qDULhpJWw1R6c0/gst8/LRYN"
    "dz9lmtFrqk1WcBGV75cn3TZ2Fi/6DDPLcUdZV6JGmiB9/pUGPmV6pI/iZ3wgTnEFOfD+nd"
    "9jHwkHg9worfYj4B8ge+oqMR8AnHjhTnXWB71HWR3ZUlbjG5gQ7OOXirtrvkUkgOPfFnaH"
    "BS5seQycZ8bGVuJvP6NFYW02p12b62vg3j5Nfu5F1471CYg3LxpH1KxczbP2HeHgoWNHPz"
    "UhcKrUtapTWMv7fbP+wf7R30Y4sSt5QZkpxyruiOa0erKSVjrpdOBzFUoQHF0pHnUa1N51"
    "mtNuwxnXOX+/tV/OX+frHDlH2NYmVXKsDsFBCzsLf7KDcL4tSK9Ow/gtQgyZoUe5J5M1Al"
    "xhwDSMC7s0+COo2xvEiYOjNFpCu7Tj6fs2gtLmoFt2g4oXQKvl5+XKRotd6pbKUvnXCpLm"
    "B4WpMs3aYs+rUpmWdz8pbXBvKKq0jy6Nz6qvDGCi3Edn+3yqKqkCrEV/WZwPTZzXVDoqVL"
    "FKwj5sVKcV9ppOSFUjWcd/ptbrIq9EtoRr9jE3o0ZyyXhR5NnqRsUzmCZoV4rcrrCuyNBr"
    "ixQgvhNfvSNtJENyTcOHWoNc2LNYKO0kBjKEVqiTJCY6hugMzic4OGbVlkYTxefVuUwi9B"
    "A96USvvCtRqK6xin92Kc3mePytJTeW4v6ip1fG4gVIPrq+rontPUNqjM+6rMQLFPM4et1m"
    "Zx4Y0AXWvlN9FoHby1zCPLEzD9HL9WUtA91mgdwrWcUuC79lIz9Vk9E0VsYhRxRgkXjv8S"
    "CfhZbm7DnERpTGEFsgMvEK6TVrtINBhO3ZjxXBZ/GE5dX6YA0jvsJJI3bLpCbGdZyNU/bD"
    "KtZqr1aVTryz+hoyQl4ykndDQ5yuvtVInyhFTxSt7OQpRn5oZeTlT31VXbRHKiubCnNIrz"
    "lcwzTgxpVgd/Sl3whoVra54YordEL3yIFUz88Hj8YKbdVr0ZILNPEeuhG8m3kFbs9sq8VV"
    "IK9bCkFOrhwrwb/m9eleqywytDDRMzaDLnFOgT2Ns/0JrsjDVaOLBrOL2y0VnJbZ0aSk0F"
    "MW0+HakYLq3BpceUIO1BnlKq6Qypdg7wZ2V9D/8HANyQ4w=="
)
