# ruff: noqa: N999 (aerich names migration files "{number}_{timestamp}_{name}.py")
"""imgate migration 4_20261201003655_reactions.

Written by ``python -m services.migrations.make``: aerich's SQL for each dialect; the runner
(services/migrations/runner.py) applies it in one transaction with the others pending.

Reactions (issue 15): one row per (message, user, emoji), owned by the reaction service.
"""

from tortoise import BaseDBAsyncClient

from services.migrations.dialect import sql_for

RUN_IN_TRANSACTION = True

UPGRADE = {
    "sqlite": r"""
        CREATE TABLE IF NOT EXISTS "reactions" (
        "id" INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
        "message_id" VARCHAR(26) NOT NULL,
        "uid" VARCHAR(64) NOT NULL,
        "emoji" VARCHAR(32) NOT NULL,
        "ts" BIGINT NOT NULL,
        CONSTRAINT "uid_reactions_message_9154a3" UNIQUE ("message_id", "uid", "emoji")
        );
        CREATE INDEX IF NOT EXISTS "idx_reactions_message_906d94" ON "reactions" ("message_id");
    """,
    "postgres": r"""
        CREATE TABLE IF NOT EXISTS "reactions" (
        "id" BIGSERIAL NOT NULL PRIMARY KEY,
        "message_id" VARCHAR(26) NOT NULL,
        "uid" VARCHAR(64) NOT NULL,
        "emoji" VARCHAR(32) NOT NULL,
        "ts" BIGINT NOT NULL,
        CONSTRAINT "uid_reactions_message_9154a3" UNIQUE ("message_id", "uid", "emoji")
        );
        CREATE INDEX IF NOT EXISTS "idx_reactions_message_906d94" ON "reactions" ("message_id");
    """,
}

DOWNGRADE = {
    "sqlite": r"""
        DROP TABLE IF EXISTS "reactions";
    """,
    "postgres": r"""
        DROP TABLE IF EXISTS "reactions";
    """,
}


async def upgrade(db: BaseDBAsyncClient) -> str:
    return sql_for(UPGRADE, db)


async def downgrade(db: BaseDBAsyncClient) -> str:
    return sql_for(DOWNGRADE, db)


MODELS_STATE = (
    "eJztXVtT47gS/iuqvCxUhTkQwuWwT8Awu+wMMMUwZ7eK3QqKrSSaOJJHkoEUy38/knxPbG"
    "OHJCRGTzNI3bLzWe7uT92SnxojaiOHfzhGDFuDxhF4ahA4QvI/Ez1N0ICuG7erBgG7jhaF"
    "sUyXCwYtIVt70OFINtmIWwy7AlMiW4nnOKqRWlIQk37c5BH800MdQftIDBCTHbf/yGZMbP"
    "SIePinO+z0MHLs1K1iW11bt3fE2NVt50R80oLqat2ORR1vRGJhdywGlETSmAjV2kcEMSiQ"
    "Gl4wT92+urvgd4a/yL/TWMS/xYSOjXrQc0Ti53Y7cVuj07m8uul8O7vpdBoVALIoUeDKW+"
    "X61/fVLWy1dtoH7cPd/fahFNG3GbUcPPuXjoHxFTU8lzeNZ90PBfQlNMYxqPeIcXVLU8ie"
    "DiDLhjahMoGvvPFJfEM0iwAOG2KE41m1DIhH8LHjINIX6tVo7e0VAPq/4+vT34+vN6TUpr"
    "okla+B/3ZcBl0tv0+hHqOsXqoKCAfiNUR3Z3u7BLpSKhdd3ZdGV15RIP/VTiP8x7ery2yE"
    "EyoTKNvYEuBf4GA+ZSvWAO0CcBUYauQR5z+dJKYbF8d/TcJ9+uXqRINDuegzPYoe4ERCrw"
    "x0b5iwJqqhC63hA2R2Z6qHtmie7HTXqDWabIEE9jWQ6her3xe4rI/dc9KjWc4s6Cl0ZnjU"
    "l0+1M0IClvJojc9o/J976HhICliCA9ilngDShwFlW7uQI4AFR04PbKhGbg3QCILAVm5+aE"
    "w8vnmM9wpfOkTjKgYpEJ+PQXpbf5oyR/vtEtZov51rjFTXC/5VPeJK3jVUqKH1n5tvXRET"
    "dOyJwdm98iNZIXXUWRxVS7EOUnK8nCE6dl1E7C1KnDFwaB/QHmDonlpQCUg7QmxgY66G50"
    "3ZA23QHQN5ATYGXUaHiAFBwRBbQ+nj7qVhQVxZFD5toRZ5oTnTgBPcfy9M4L+t1u7uQWt7"
    "d/9wr31wsHe4HVGC6a4ibnBy/puiB6kX7WW+4GXBn2/NvEz062DL5uU6YmhtdI+tSr4i1p"
    "gJ4GD2ria+u60S+O62cvFVXWl8h/J3VQp6AvkaTt6d/TIsbD+fhO1Pgut7r/JW2Zd/2Sqv"
    "A7RLM8wrEvZ81GbnRrp4khX4JLsLQx/ffMkgQEqWDX4IgJYlIwmgtUCPMkCJ5Ex6KBWiqL"
    "88jtivQAcukkOBb78fb7X29gHmgAvKkJ0R68xvXBParPAbtD6hzfqT4jeMbFbORSw4tHEd"
    "KKTJGlWBOKmzPJAbjTWFWPuFzgDyQRWQ01pm/exFU2ExpKDowIzl/CJXmNYzcWVFrxg/AP"
    "ToYoZ45QeQ1pvpAbzMR+salMTwqxW24QzzP623IPhrOv1XhFZ955otTPEp3d4sIlKKl5Qj"
    "UAspzHjLwLmGzjCfoeh/KyAdytcuvNtpHZZZwGod5q9gqb4JluInM7I4OKUOgiSHqiTUJo"
    "DuSr1FIR21LLeK4OTq6osaOaoiODmfsKmX3y9OziT4GnophEWOqzOh3vv1daeUqFIGGAA1"
    "5fNS/YW+z0pIllxEvCIIJNWOwN2dffQEn4+eus93d2Bj52hnE1Amm/tHT31sy8YP8g8Hct"
    "Hh6KcUwVyXasg/5EgeEYhNryku7jJzXmLMdyA19dQ77VJVaO2CKrT29kvO2qSbIrzLOOt8"
    "Vz3lqMMXpJrbSGotz2lsr73HmEJ+xPudamZkQq1+yepWmXxqKz+f2prKp2rIqiZVE0pmhs"
    "82w01Q+sYPwHDcRXJc+kD8xaSy8EYK9TPa81mvqUCoEiwHjbrBkt2EiQkUP32+Rk7Efiaw"
    "DzjShR5kDQ3LczjJwtZgpjwvknEGaGVwzRjHfJaZeGAlilR0ocgvHARaA+zqalldI8uFfF"
    "AAE11QkqSHGUUps4+TwRBvNVXWnTIM+8fUpKyO9zM1Kcux1elEG7Srk8iklgmxZ4vwflBM"
    "0AzYp/UM+jNSeNSbZfEkoWWSyzMn96lTiduE8kvkNqMoGFq7ZcGRJyon7yIdk7mrkLlzMS"
    "GVoY6VDNZVsqQyaK+43JpQqWEyYW7JmynmngZ9GvFPlCHcJ5/RWON+Lm8Skswq5Zws5prh"
    "nsfTZTODDxFXTM43iYH85cifzKfH306PP541nt8mx3yBOIfaz2dQfr+rWcz5tVBp0h/IN4"
    "PNIJKYWwi4iKXZObi721ANTZXV3by704xetnEkHzJrAgvbupUh4M+Do4x1gUVd6m+i0s09"
    "zLgAfXyPOOhDd6vHEAKUSR15A80gIy0HtgG20cil6iQNoAbN3dsbrz2oGFI+tduGfxOqyX"
    "rtcsS7y1/PK92Uv+6QbQCLXY7xN8X+JunVKxOwpbPe2pGv2OCUndSxRg2n9QK2blSMUmsb"
    "oc4fWo1OBWxD+RqCu4Ct6+gxI9l/I1tzwA3k65ARLcDy5uyvmxSHnTovbDQOer5cXf4Wik"
    "8eIjZRYw3987bSWOef0xbKv+qQtvXBfG5ntKXWxWR4HhbHlsU9qWOwnx17cyzG0vfPuU7G"
    "0Xb5Mz1SMNN89mmuQZSMv1JyI6GzIFe6/gw9sS/XxrPUJabUTOZuDbfK+MfpfJVvH1KLzb"
    "kH7kQSzRJn7rhJ4bluGr0Ni1CCIzxModHKTOhmwYKfKTQyh98sBeD5n8xCiYNJBsCF2ehY"
    "yWSjq2T+zUFDCz9oyFDGJW/5oaTS9y9C+aU5v3XbcLIigfMlFbiHrdw95qn+wqCZJCQr7D"
    "FPqkUnSqqSfrAB052CAvkzxrqTq13fSpLRB4CgNcj4eMDcRzeHVq60sTJx+/Lj9i61Ky0k"
    "hvLmezKvWEg022/f70JX0h+feozTzN16GVKlfXfH0golXfjNAAG1oz7tTLENBlDOCFu51c"
    "QR0RvyyvgeMYy4rqhjkPTVf3tCemQsMpz4AsY363Hr9N6tj1+vVTGNWZBb8AqGPoakqvlI"
    "KJmtfWvnu4OC+tyPYaX6C/11UNpe7ZNYYR18VBf/wLAQiKj98apcPWj/RVLfB9kifSeXA+"
    "oz2fQX9zymLg/kxPGQbIECuJ5/ZPdE4f1CrvM32VCV+Q5UrpwjyKwB0LNWXnZTlfRzb4Q+"
    "gI96Y0VQ7B+0mk9OrPwbWuTlw8lezdmntWrokuZfPWF45fv1TV+lif2DdrPcUthV6JGUie"
    "78oN0KK79KRfE3tYPA/34r9USXPm4eAYbk45FW/AGLAVA/cIv2esAjAjtKXDSBzajrIrup"
    "jgbF5B46OOODRQu7SiaFFJDJPwODkzA/hkyuzMtW5GZSj69CZjGptijbV9enYZz80p28C8"
    "cOhRko5y/aJ1TMuv0r1u2hZEEjN6t0Ide6JFVqw/hbO+2D9uHufjuyKFFLkSHJOAYTPYrK"
    "0WpCyZjrmctBDFVYgUOmEWO00mbdtFYd9uZNuMu9vTL+cm8v32GqvpViZTc6wGzkELOgt/"
    "kiN/Pj1JL07E9JapBiTZo9qboZqAtjjgAk4NPphaROfawGCUpnhog0Vdfx10se5uLCVvCA"
    "ugNKh+D79ZdpirbQKxVl+pIFl3oAw9NWydKtS9KvTsU861O3vDSQ53z6ngi/910W3kihht"
    "ju7ZRJqkqpXHx1nwlM39xcr0i0dI38PGJWrBT1FUZKLJBawHcibycWqwK/hEb0Bzahx+rM"
    "5aLQY5UXKeu0jXu1Qrxa1XX59qYCuJFCDeE1+9LW0kS/abjx/H/+oGt3"
)
