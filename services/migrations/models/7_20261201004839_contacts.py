# ruff: noqa: N999 (aerich names migration files "{number}_{timestamp}_{name}.py")
"""imgate migration 7_20261201004839_contacts.

Written by ``python -m services.migrations.make``: aerich's SQL for each dialect; the runner
(services/migrations/runner.py) applies it in one transaction with the others pending.

Contacts (issue 15): contact requests and accepted contacts (messaging.policy = "contacts"),
owned by the contact service.
"""

from tortoise import BaseDBAsyncClient

from services.migrations.dialect import sql_for

RUN_IN_TRANSACTION = True

UPGRADE = {
    "sqlite": r"""
        CREATE TABLE IF NOT EXISTS "contact_requests" (
        "id" INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
        "uid" VARCHAR(64) NOT NULL,
        "peer" VARCHAR(64) NOT NULL,
        "accepted" INT NOT NULL,
        "text" VARCHAR(200) NOT NULL,
        "ts" BIGINT NOT NULL,
        CONSTRAINT "uid_contact_req_uid_f5cdb5" UNIQUE ("uid", "peer")
        );
        CREATE INDEX IF NOT EXISTS "idx_contact_req_peer_69f797" ON "contact_requests" ("peer");
    """,
    "postgres": r"""
        CREATE TABLE IF NOT EXISTS "contact_requests" (
        "id" BIGSERIAL NOT NULL PRIMARY KEY,
        "uid" VARCHAR(64) NOT NULL,
        "peer" VARCHAR(64) NOT NULL,
        "accepted" BOOL NOT NULL,
        "text" VARCHAR(200) NOT NULL,
        "ts" BIGINT NOT NULL,
        CONSTRAINT "uid_contact_req_uid_f5cdb5" UNIQUE ("uid", "peer")
        );
        CREATE INDEX IF NOT EXISTS "idx_contact_req_peer_69f797" ON "contact_requests" ("peer");
    """,
}

DOWNGRADE = {
    "sqlite": r"""
        DROP TABLE IF EXISTS "contact_requests";
    """,
    "postgres": r"""
        DROP TABLE IF EXISTS "contact_requests";
    """,
}


async def upgrade(db: BaseDBAsyncClient) -> str:
    return sql_for(UPGRADE, db)


async def downgrade(db: BaseDBAsyncClient) -> str:
    return sql_for(DOWNGRADE, db)


MODELS_STATE = (
    "eJztXVtz27YS/isYvdSeUXJsWb4c98l2kjZNYmcc57QzaUeGSEhCRAEMAPoyqf/7AcC7RN"
    "KkLMoUjafEwC5IfQT328UuwJ+dGbWRw1+fIIatSecY/OwQOEPyP3M9XdCBrhu3qwYBh44W"
    "hbHMkAsGLSFbR9DhSDbZiFsMuwJTIluJ5ziqkVpSEJNx3OQR/MNDA0HHSEwQkx3f/pHNmN"
    "joDvHwT3c6GGHk2Klbxba6tm4fiHtXt70n4p0WVFcbDizqeDMSC7v3YkJJJI2JUK1jRBCD"
    "AqnhBfPU7au7C35n+Iv8O41F/FtM6NhoBD1HJH7ucBC3dQaD84urwZe3V4NBpwJAFiUKXH"
    "mrXP/6sbqFV73d/mH/aO+gfyRF9G1GLYcP/qVjYHxFDc/5VedB90MBfQmNcQzqDWJc3dIC"
    "smcTyLKhTajM4StvfB7fEM0igMOGGOF4Vq0D4hm8GziIjIV6NXr7+wWA/u/k8uz3k8stKb"
    "WtLknla+C/HedBV8/vU6jHKKuXqgLCgXgL0d3d2SmBrpTKRVf3pdGVVxTIf7XTCP/x5eI8"
    "G+GEyhzKNrYE+Bc4mC/Yig1AuwBcBYYaecb5DyeJ6dank7/m4T77eHGqwaFcjJkeRQ9wKq"
    "FXBno0TVgT1TCE1vQWMnuw0EN7NE92sWvWm823QALHGkj1i9XvCyjrzfA9GdEsMgt6CskM"
    "z8byqQ5mSMBSjNb5gO7/cwMdD0kBS3AAh9QTQHIYULZ1CDkCWHDkjMCWauTWBM0gCGzl9u"
    "vO3ONbxXhP4NIpuq9ikALx1Rik5+XTlDk66JewRgf9XGOkuh7hV/WIK7FrqNBC678ybm2I"
    "CTrxxOTtjeKRLJc66iz2qqXYACk5Xs4QnbguIvYrSpx74NAxoCPA0A21oBKQdoTYwMZcDc"
    "+7sgfaYHgP5AXYPRgyOkUMCAqm2JpKjruRhgVxZVH4ooWq80IrDgNO8filRAL/7fX29g57"
    "O3sHR/v9w8P9o50oJFjsKooNTt//psKD1Iv2eLzgZcGfb828TPTbYMtWRR0xtDa6wVYlro"
    "g1lgI4mL3NxHevVwLfvV4uvqorje9U/q5KTk8g38LJu3tQJgo7yA/CDubB9dmrvFX25R+3"
    "ypsA7doMc0Pcnjfa7FxJiidZjk+yu9D18c2XdAKkZFnnhwBoWdKTAFoLjCgDlMiYSQ+lXB"
    "T1l8cR+xVox0XGUODL7yevevsHAHPABWXIzvB1VjeucW0a/AZtjmuz+UHxM3o2jaOIml0b"
    "14FCmqxZFYiTOusDudPZUIg1LwwmkE+qgJzWMutnj5oKiyEFxQBmLOcXUWFaz/iVFVkxfg"
    "DozsUM8coPIK231AN4PB5tq1MSw69W2KZLzP+0Xk3wt3T6NySs+sp1tLAQT+n2blEgpeKS"
    "cgFULYUZz+k4t5AM8yMU/W8FpEP51rl3u72jMgtYvaP8FSzVNxel+MmMrBicUgdBkhOqJN"
    "TmgB5KvbqQjlrWW0VwenHxUY0cVRGcvp+zqedfP52+leBr6KUQFjlUZ1y9l8t1Z5SoUgYY"
    "ALXAean+Qu6zEpIlFxEvCAJJtWNwfW0f/4QPxz+HD9fXYGv3eHcbUCabx8c/x9iWja/lHw"
    "7kYsDRDymCuS7VkH/IkTwiEFtcU6zvMiteYswnkJYy9W6/VBVav6AKrb/zGFmbdFOEdxmy"
    "zqfqBaIOX5BqtJHUWh9p7Gw8YywgP+PjQTUzMqfWvmR1r0w+tZefT+0t5FM1ZFWTqgklM8"
    "OXm+HGKX3mB2Bi3DpjXHpL/MWksvBGCu0z2qtZr6kQUCWiHDQbBkt2cyYmUHz34RI5UfQz"
    "h30QI33Sg2ygYXkIJ1nYGsyUhzojzgCtjFgzxjE/ykw8sBJFKrpQ5BcOAq0JdnW1rK6R5U"
    "I+KICJLihJhocZRSnLj5MRIX7TobLulG7YP6YmpTnsZ2pS1mOr04k2aFcPIpNaxsVezsP7"
    "TjFBS2Cf1jPoLxnCo9EyiycJLZNcXjq5T51KsU0ov8bYZhY5Qxu3LDjzROXkXaRjMncVMn"
    "cuJqQy1LGSwbpKllQ67RWXWxMqLUwmrCx5sxC5p0FfRPwdZQiPyQd0r3F/L28Skswq5Zws"
    "5obhnheny2YGb6NYMTnfJAbylyN/Mp+dfDk7efO28/A8OeZPiHOoeT4j5Pe7usUxvxYqHf"
    "QH8t1gM4gMzC0EXMTS0Tm4vt5SDV2V1d2+vtYRvWzjSD5k1gUWtnUrQ8CfB8cZ6wJ1Xepv"
    "otLNI8y4AGN8gzgYQ/fViCEEKJM68ga6QUZaDmwDbKOZS9VJGkANmru3N157UD6kfGrfOv"
    "5NqCbrqcsRLy5/vap0U/66Q7YBLKYcwzfFfJNk9coB2Nqj3tYFX7HBKTupY40WTusatm5U"
    "9FJb66GuHlqNTgVsQ/kWglvD1nV0l5Hsv5KtOeAG8m3IiBZgefX2r6tUDLtwXtjsPuj5eH"
    "H+Wyg+f4jYXI019M/bSmOdf05bKP+kQ9o2B/OVndGWWheT7nlYHFsW96SOwX557M2xGGvf"
    "P+c6GUfb5c/0SMFM8+WnuQZRRvyVkhsJnZqodPMj9MS+XBsvU5eYUjOZuw3cKuMfp/NZvn"
    "1ILTbnHrgTSXRLnLnjJoVXumn0W1iEEhzhYQqNGjOhuwULfqbQyBx+sxaAV38yCyUOJhkA"
    "F2ajYyWTja6S+TcHDdV+0JAJGde85YeSSt+/COXXRn6btuGkIY7zORV4hK3cPeap/kKnmS"
    "QkK+wxT6pFJ0qqkn6wBdOdggL5M+51J1e7vpUko7cAQWuS8fGAlY9uDq1stLEyfvv6/fYh"
    "tSstJIby5nsyT1hINNtvX+5CV5KPzzzGaeZuvQyp0tw9sLRCSQq/miCgdtSnyRTbYALljL"
    "AVrSaOiN6SV8Y3iGHEdUUdg2Ss/jsSkpGxyCDxGsY363Gb9N5tDq+3qpjGLMjVvIKhjyGp"
    "aj4SSmZr38Zxd1BQn/sxrFR/IV8Hpe3VPokV1sFHdfG3DAuBiNofr8rVg/ZfZOh7K1skd3"
    "I5oD6TTX9xz2Pq8kBOHA/JFiiA6/lHds8V3tdynb/JlqrMd6Cico4gsyZAz1p52W1V0s+9"
    "GXoN3uiNFUGxf9BqPjnR+De0iOXDyV6N7NNaLaSk1VdPmLjy5XLTZ2li/6DDLFoKuwoZSZ"
    "nowXc6rLDyq1RU/KZ2EPjfb6WeGNK77WPAkHw80orfYjEB6ge+oqMR8IjAjhIXXWAz6rrI"
    "7qqjQTG5gQ7O+GBRbVfJDCEFZPLPwOAkzI8JJhvzshXRTOrxVcgsJtXqsn1tfRqG5NdO8i"
    "68dyjMQDl/0T6hYtbtn7BuD2UUNHOzShdyrUtSpTURf2+3f9g/2jvoRxYlaikyJBnHYKI7"
    "UdlbTSgZc710OYgJFRpwyDRijFbarJvWasPevDm63N8vw5f7+/mEqfoaFZVdaQezkxOYBb"
    "3dR2Mz308tGZ79KYMapKImHT2puhmoC2OOASTg3dknGTqNsRokKJ2ZItJVXSefz3mYiwtb"
    "wS0aTiidgq+XHxdDtFqvVJTpSxZc6gFMnNYkS7cpSb82FfNsTt3y2kBe8el7Ivzed1l4I4"
    "UWYru/WyapKqVy8dV9xjF9dnPdEG/pEvl5xCxfKeor9JRYIFXDdyK/zS1WBbyEZvQ7Nq5H"
    "c+ZykevR5EXKNm3jbpaL16q6Lt/eVAA3UmghvGZf2kaa6Ia4G6cOtaZZvobfUehoDJVILV"
    "5GYAz1BZBJPjdo2hZ5Fobx6tuiFLwJFeBNqLTPXavh4EVDei+G9D4zOsL6vhbTEUFXIfG5"
    "vlAN1FeW6J7T1DboeOxVmYF8TjMfqazN4sIbCXqlzG+s0Tp4a1lHVl8O9DJ4reAg7EijdQ"
    "jXcrq759pLrdSn9YwXsYlexBklQhL/JZLw88zahjmJQp/C8mUHzBeuM6x2kWwwMXVj5nOR"
    "/2Fi6voqBVC1j0SE8iaaLuHbWRZyq3+kL6lmTuurcFpf9pcNCkoynvJlgyZ7eb2dMl6elM"
    "rP5O0seHlmbajtXt3D/wEokk0z"
)
