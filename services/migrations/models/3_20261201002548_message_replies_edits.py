# ruff: noqa: N999 (aerich names migration files "{number}_{timestamp}_{name}.py")
"""imgate migration 3_20261201002548_message_replies_edits.

Written by ``python -m services.migrations.make``: aerich's SQL for each dialect; the runner
(services/migrations/runner.py) applies it in one transaction with the others pending.

Replies and edits (issue 15): a message's quote of the message it answers (``reply``) and that
message's id (``reply_to``, indexed: a recall or an edit updates the quotes of the message), and
the time of the sender's last edit (``edited_at``). All null on the existing rows.
"""

from tortoise import BaseDBAsyncClient

from services.migrations.dialect import sql_for

RUN_IN_TRANSACTION = True

UPGRADE = {
    "sqlite": r"""
        ALTER TABLE "messages" ADD "reply" JSON;
        ALTER TABLE "messages" ADD "reply_to" VARCHAR(26);
        ALTER TABLE "messages" ADD "edited_at" BIGINT;
        CREATE INDEX "idx_messages_reply_t_d8fcba" ON "messages" ("reply_to");
    """,
    "postgres": r"""
        ALTER TABLE "messages" ADD "reply" JSONB;
        ALTER TABLE "messages" ADD "edited_at" BIGINT;
        ALTER TABLE "messages" ADD "reply_to" VARCHAR(26);
        CREATE INDEX IF NOT EXISTS "idx_messages_reply_t_d8fcba" ON "messages" ("reply_to");
    """,
}

DOWNGRADE = {
    "sqlite": r"""
        DROP INDEX IF EXISTS "idx_messages_reply_t_d8fcba";
        ALTER TABLE "messages" DROP COLUMN "reply";
        ALTER TABLE "messages" DROP COLUMN "reply_to";
        ALTER TABLE "messages" DROP COLUMN "edited_at";
    """,
    "postgres": r"""
        DROP INDEX IF EXISTS "idx_messages_reply_t_d8fcba";
        ALTER TABLE "messages" DROP COLUMN "reply";
        ALTER TABLE "messages" DROP COLUMN "edited_at";
        ALTER TABLE "messages" DROP COLUMN "reply_to";
    """,
}


async def upgrade(db: BaseDBAsyncClient) -> str:
    return sql_for(UPGRADE, db)


async def downgrade(db: BaseDBAsyncClient) -> str:
    return sql_for(DOWNGRADE, db)


MODELS_STATE = (
    "eJztXVFT27gW/iuavCzMpL0QEuBynwKlu2wLdFp67850d4xiK4k2juRKMpBh+e9Xku3YTm"
    "xjhyQkRk8tR+fI9mf5nPNJR8pjY0wd5PL3XcSwPWycgMcGgWMk/zPT0gQN6HmxXAkE7Lla"
    "FcY6PS4YtIWU9qHLkRQ5iNsMewJTIqXEd10lpLZUxGQQi3yCf/rIEnSAxBAx2fDjLynGxE"
    "EPiEd/eiOrj5HrpG4VO+raWm6JiadlF0R81Irqaj3Lpq4/JrGyNxFDSqbamAglHSCCGBRI"
    "dS+Yr25f3V34nNETBXcaqwS3mLBxUB/6rkg8bs+KZQ3Lurq+sb6d31hWowJANiUKXHmrXD"
    "/9QN3Cu9Z++6h9fHDYPpYq+jankqOn4NIxMIGhhufqpvGk26GAgYbGOAb1DjGubmkO2bMh"
    "ZNnQJkxm8JU3PotvhGYRwJEgRjgeVeuAeAwfLBeRgVCfRqvTKQD0v92vZ791v+5IrV11SS"
    "o/g+DruAqbWkGbQj1GWX1UFRAO1WuI7v7eXgl0pVYuurotja68okDBp51G+Pdv11fZCCdM"
    "ZlB2sC3AP8DFfM5XbAHaBeAqMFTPY85/uklMdy67f8zCffb5+lSDQ7kYMN2L7uBUQq8cdH"
    "+U8CZK0IP26B4yx5proS2apzvfNG6NZyWQwIEGUj2xer4wZH3oXZA+zQpmYUthMMPjgXyr"
    "1hgJWCqiNT6hyb/uoOsjqWALDmCP+gLIGAaUb+1BjgAWHLl9sKOE3B6iMQShr9x935h5fc"
    "vo7wWxdIQmVRxSqL4ch/S68TTljg7bJbzRYTvXGammZ+KresWVomtkUEPvv7TYuiEuqOuL"
    "4fmdiiNZKfW0sTirlmoWUnq8nCPqeh4izjtK3Alw6QDQPmDojtpQKUg/QhzgYK66503ZAh"
    "3QmwB5ATYBPUZHiAFBwQjbIxnj7qRjQVx5FD7voVZ5oSXTgFM8eCtM4N+t1sHBUWvv4PC4"
    "0z466hzvTSnBfFMRNzi9+FXRg9SH9jxf8LPgz/dmfib6dfBlywodMbQOusN2pVgRWywEcD"
    "h6NxPfg1YJfA9aufiqpjS+I/lclZKeUL+Gg3f/sAwLO8wnYYez4AbRq7xXDvSf98rbAO3a"
    "HPOGpD0ftNu5kSGeZCU+yebC1CdwXzIJkJplkx8CoG3LTAJoK9CnDFAiOZPuSqUo6i+fI/"
    "YfoBMXyaHAt9+671qdQ4A54IIy5GTkOsvr16Q2G/wFbU9qs/2k+BUzm40LEStObTwXCumy"
    "xlUgTtqsD+RGY0sh1nHBGkI+rAJy2srMnz3rKmyGFBQWzJjOLwqFaTuTV1aMivELQA8eZo"
    "hXfgFpu4VewPN8tK5JSQy/mmEbLTD+03Yrgr+mw39DaNV3rtnCHJ/S8mYRkVK8pByBWklh"
    "xmsmzjUMhvkMRf9bAelIv3bp3X7ruMwEVus4fwZLtc2wlGAxI4uDU+oiSHKoSsJsBuietF"
    "sV0lPJeqsITq+vP6uep1UEpxczPvXq++XpuQRfQy+VsMgJdSbVe7ux7owSVcoAQ6DmYl6q"
    "vTD22QnNkpOI1wSBpNkJuL11Th7h08lj7+n2Fuzsn+zvAsqkeHDyOMCOFL6Xf7iQC4ujn1"
    "IFc12qIf+QPflEIDY/p7i6yyx5ijE/gNQ0Uu+3S1WhtQuq0Np7zwVrs9w0xbtMsM4P1XOB"
    "OvpAqoWNpNX6gsbe1keMOeTHfGBVcyMzZvVbrG6VWU9t5a+ntubWUzVkVRdVE0ZmhC82wk"
    "1S+sovwHDcVXJcek+CyaSy8E4N6ue0lzNfU4FQJVgOGvfCKbsZFxMafvz0FblT9jODfciR"
    "LnUnW+hYnqJBFknDkfK0SsYZopXBNWMc81lm4oWVKFLRhSK/cBBaDbGnq2V1jSwX8kUBTH"
    "RBSZIeZhSlLN5PBkP8oamybpRp2F+mJmVzop+pSVmPr04vtEGnOolMWpkUe7EM72+KCVoA"
    "+7SdQX9BCo/6i0yeJKzM4vLCi/vUrcRtIv01cpvxNBnaumnBsS8qL95NbczKXYWVOw8TUh"
    "nq2MhgXWWVVCbtFadbEyY1XExY2uLNHHNPgz6P+EfKEB6QT2iicb+QNwlJZpVyzirmluGe"
    "x9OlmMH7KVdMjjeJgXxyFAzms+63s+6H88bT66wxXyLOoY7zGZQ/aGoWc36tVJr0h/rNcD"
    "OIJOY2Ah5iaXYObm93lKCpVnV3b281o5cyjuRLZk1gY0dLGQLBODjJmBdY1aX+JGq5uY8Z"
    "F2CA7xAHA+i96zOEAGXSRt5AM1yRlh07ADto7FF1kgZQnebu7Y3nHlQOKd/aj0ZwE0pkv3"
    "Q64s2tXy9ruSl/3iHbARaHHBNviuNNMqpXJmBrZ721I1+xwyk7qGOLGg7rFWzdqJil1jZD"
    "XT60Gp0K2Eb6NQR3BVvX0UPGYv+NlOaAG+rXYUW0AMub8z9uUhx27ryw8SRs+Xx99WukPn"
    "uI2EyNNQzO20pjnX9OW6T/okPatgfzpZ3RlpoXk+l5VBxbFvekjcF+cewZ8tyMk9bygZ8a"
    "GNRfiLokoJXm2hM2K/Ls208YE9tEHbxImVzKzCwkLcplzGk7b2erTHCczhfp7pCabM49cG"
    "eq0Sxx5o6XVF7qptEfURFKeISHKTTamAHdLJjwM4VG5vCbtQC8/JNZKHExyQC4cDU6NjKr"
    "0VVW/s1BQys/aMjkdmve8kNJpd+/iPTXFvy2bcPJhiTOV1TgPrZz95in2guTZpLQrLDHPG"
    "k2PVFSlfSDHZhuFBTIx5joRq52fStNRu8BgvYw48cDlt67ObRyo52VydvXn7f3qFNp5jbS"
    "N78n84KZW7P99u1OdCXj8ZnPOM3crZehVTp2W7Y2KBnCb4YIqB316WCKHTCEckQ4Kqwmjo"
    "jekVfGd4hhxHVFHYNkoP7bFzIiY5ERxFfQv5mP26bvbnvieq2KacyE3IpnMPQxJFXdR8LI"
    "bO3butgdFtTn/hhWqr0wXoel7dV+Eiuqg5/Wxd8zLAQian+8KlcP5b9I6nsvJTJ2ctmhPp"
    "NN/+Kez9TlgRw4PpISKIDnB0d2zxTer+Q6f5IdVZnvQhXKOYLMHgI9auVld1VJP/fH6D34"
    "oDdWhMX+odT85MTGf6FFUT4a7NWCfdqqhiFp+eUqhle+3dj0RbrY32kvKyxFTYURSblo62"
    "/aqzDzq0wUf1M7CILfb6W+6NGH3RPAkHw90ovfYzEE6gHf0X4f+ERgV6mLJnAY9TzkNNXR"
    "oJjcQRdn/GDRyq6SSSEFZPLP0OEk3I8hkxvzsRWFmdTrq7CymDRble+r69swQX7tQd6DE5"
    "fCDJTzJ+0TJmbe/gXz9lCyoLGXVbqQ612SJrVh/K399lH7+OCwPfUoU0mRI8k4BhM9iMrZ"
    "asLIuOuFy0EMVdiAQ6YRY7TSZt20VR325s2Ey06nTLzsdPIDpmrbKFZ2oxPMRg4xC1ubz3"
    "KzIE8tSc/+J0kNUqxJsydVNwN1YcwJgAR8PLuU1GmAVSdh6cwIkaZq6n654tFaXCQF96g3"
    "pHQEvn/9PE/RVnqlopW+ZMGl7sDwtE3ydNuy6FenYp7tqVteG8hLPn1PRL/3XRbeqUENse"
    "3sl1lUlVq5+Oo2k5i+urt+1Wzp6f/Nh8Se"
)
