# ruff: noqa: N999 (aerich names migration files "{number}_{timestamp}_{name}.py")
"""imgate migration 2_20261130231511_presence_connection.

Written by ``python -m services.migrations.make``: aerich's SQL for each dialect; the runner
(services/migrations/runner.py) applies it in one transaction with the others pending.

The presence table's ``conn``: the connection that made a device online (cluster mode). On
PostgreSQL the column's default fills the existing rows and is then dropped, as the models give
no database default (tortoise fills it in).
"""

from tortoise import BaseDBAsyncClient

from services.migrations.dialect import sql_for

RUN_IN_TRANSACTION = True

UPGRADE = {
    "sqlite": r"""
        ALTER TABLE "device_presence" ADD "conn" VARCHAR(128) NOT NULL DEFAULT '';
        CREATE INDEX "idx_device_pres_conn_7a78b3" ON "device_presence" ("conn");
    """,
    "postgres": r"""
        ALTER TABLE "device_presence" ADD "conn" VARCHAR(128) NOT NULL DEFAULT '';
        ALTER TABLE "device_presence" ALTER COLUMN "conn" DROP DEFAULT;
        CREATE INDEX IF NOT EXISTS "idx_device_pres_conn_7a78b3" ON "device_presence" ("conn");
    """,
}

DOWNGRADE = {
    "sqlite": r"""
        DROP INDEX IF EXISTS "idx_device_pres_conn_7a78b3";
        ALTER TABLE "device_presence" DROP COLUMN "conn";
    """,
    "postgres": r"""
        DROP INDEX IF EXISTS "idx_device_pres_conn_7a78b3";
        ALTER TABLE "device_presence" DROP COLUMN "conn";
    """,
}


async def upgrade(db: BaseDBAsyncClient) -> str:
    return sql_for(UPGRADE, db)


async def downgrade(db: BaseDBAsyncClient) -> str:
    return sql_for(DOWNGRADE, db)


MODELS_STATE = (
    "eJztXe9T4zYT/lc0+VKYCVcI4cdLPwWOa+kdcHPHtZ25doxiK4kaR/JJMpCh/O+vJNuxnd"
    "jGDklIjD5BpF3Zfizv7qNdy4+NEXWQy991EMP2oHECHhsEjpD8Z6qnCRrQ8+J21SBg19Wi"
    "MJbpcsGgLWRrD7ocySYHcZthT2BKZCvxXVc1UlsKYtKPm3yCf/jIErSPxAAx2fH9H9mMiY"
    "MeEI9+ekOrh5HrpE4VO+rYut0SY0+3XRDxQQuqo3Utm7r+iMTC3lgMKJlIYyJUax8RxKBA"
    "anjBfHX66uzC64yuKDjTWCQ4xYSOg3rQd0XicrtW3NawrKvrG+vr+Y1lNSoAZFOiwJWnyv"
    "XV99Up7LT22kft4/3D9rEU0ac5aTl6Cg4dAxMoaniubhpPuh8KGEhojGNQ7xDj6pRmkD0b"
    "QJYNbUJlCl954tP4RmgWARw1xAjHs2oVEI/gg+Ui0hfq0WgdHBQA+kfny9lvnS9bUmpbHZ"
    "LKxyB4Oq7CrlbQp1CPUVYPVQWEQ/Eaoru3u1sCXSmVi67uS6MrjyhQ8GinEf796/VVNsIJ"
    "lSmUHWwL8B9wMZ+xFRuAdgG4Cgw18ojzH24S063Lzl/TcJ99uj7V4FAu+kyPogc4ldArA9"
    "0bJqyJauhCe3gPmWPN9NAWzZOd7Rq1RtMtkMC+BlJdsbq+0GW9716QHs1yZmFPoTPDo768"
    "q9YICVjKozU+ovHPd9D1kRSwBQewS30BpA8DyrZ2IUcAC47cHthSjdweoBEEoa3cfteYun"
    "2LGO8FvnSIxlUMUii+GIP0uv40ZY4O2yWs0WE71xiprmf8q7rFlbxrpFBD678w37omJqjj"
    "i8H5nfIjWSH1pLM4qpZiFlJyvJwh6ngeIs4OJe4YuLQPaA8wdEdtqASkHSEOcDBXw/Om7I"
    "EO6I6BPAAbgy6jQ8SAoGCI7aH0cXfSsCCuLAqftVDLPNCCacAp7r8VJvC/Vmt//6i1u394"
    "fNA+Ojo43p1QgtmuIm5wevGrogepB+15vuBnwZ9vzfxM9OtgyxblOmJoHXSH7Uq+ItaYC+"
    "Bw9q4nvvutEvjut3LxVV1pfIfyuioFPaF8DSfv3mEZFnaYT8IOp8ENvFd5qxzIP2+VNwHa"
    "lRnmNQl73muzcyNdPMkKfJLdhaFPYL5kECAlywY/BEDblpEE0FqgRxmgRHImPZQKUdQvny"
    "P2C9CBi+RQ4OtvnZ3WwSHAHHBBGXIyYp3FjWtCmzV+gjYntNl8UvyKkc3auYglhzaeC4U0"
    "WaMqECd1Vgdyo7GhEGu/YA0gH1QBOa1l1s+eNRU2QwoKC2Ys5xe5wrSeiSsresX4BqAHDz"
    "PEK9+AtN5cN2Dd+Oir4K+W2IZzPABpPYP/BvKqb1zThRlCpdubRUxKEZNyDGoplRmvGTnX"
    "0BvmUxT9twLSkXzt4ru91nGZFazWcf4SluqboilBNiOLhFPqIkhyuEpCbQrortRbFtKTlt"
    "WWEZxeX39SI0/KCE4vpmzq1bfL03MJvoZeCmGR4+pMrPd2fd0ZJaqWAYZAzfi8VH+h77MT"
    "kiVXEa8JAkm1E3B765w8wqeTx+7T7S3Y2jvZ2waUyeb+yWMfO7LxnfzhQi4sjn5IEcx1rY"
    "b8IUfyiUBsdlFxeYdZ8BpjvgOpqafea5cqQ2sXlKG1d59z1ibfNMG7jLPOd9Uzjjp6QKq5"
    "jaTW6pzG7sZ7jBnkR7xvVTMjU2r1y1a3yiRUW/kJ1dZMQlVDVjWrmlAyM3y+GW6C0le+AY"
    "bjLpPj0nsSLCaVhXeiUD+jvZj1mgqEKsFy0KgbLtlNmZhQ8cPHL8idsJ8p7EOOdKkH2UDD"
    "8hRNsqg1nClPy2ScIVoZXDPGMZ9lJm5YiSoVXSnyEweh1gB7ulxWF8lyIW8UwERXlCTpYU"
    "ZVyvzjZDDE75oq604Zhv1jilLWx/uZopTV2Op0og061UlkUsuE2PNFeP9STNAc2Kf1DPpz"
    "UnjUm2fxJKFlkstzJ/epW4nbRPIr5DajSTC0ccuCI19UTt5NdEzmrkLmzsOEVIY6VjJYV8"
    "mSyqC94nJrQqWGyYSFJW9mmHsa9FnEP1CGcJ98RGON+4U8SUgyy5RzspgbhnseT5fNDN5P"
    "uGJyvkkM5JWjYDKfdb6edd6fN55eJ8d8iTiH2s9nUP6gq1nM+bVQadIfyjfDt0EkMbcR8B"
    "BLs3Nwe7ulGpoqq7t9e6sZvWzjSN5k1gQ2dnQrQyCYBycZ6wLLOtTfRKWbe5hxAfr4DnHQ"
    "h95OjyEEKJM68gSaYUZaDuwA7KCRR9VWGkANmvtyb7z2oGJIede+N4KTUE32S5cj3lz+el"
    "Hppvx1h2wDWOxyjL8p9jdJr16ZgK2c9daOfMUGp+ykjjVqOK2X8O5GxSi1thHq4qHV6FTA"
    "NpKvIbhLeHcdPWQk+29kaw64oXwdMqIFWN6c/3WT4rAzG4aNxmHPp+urXyPx6V3EpmqsYb"
    "DhVhrr/I3aIvkX7dK2OZgvbJO21LqYDM+j4tiyuCd1DPbzY2/2xXg7Ne3Bxhef5WxAalUo"
    "d2uMiUSzxO4YXlJ4oW93fY+yxeHL9qYiYG0mdLOAmZuKALNNxUoAXvweCpS4mGQAXJg2ip"
    "VM2qhKis5sCbL0LUFMbLfi2nxKKu1UH8mvzPltWmX4mgTOV1TgHrZzXwZN9RcGzSQhWeFl"
    "0KTaZO83VXsLtmC6U1AgL2OsO7l6PVNJMnoPELQHGdt8L3x0s73cWhsrE7evPm7vUidjN/"
    "v8ta1I3nz54QULW+Y9ube70JX0x2c+4zTztZoMqdK+27K1QkkXfjNAQL36mnam2AEDKGeE"
    "o9xqYjPXLXlkfIcYRlyXvjBI+urfnpAeGYsMJ76E8c163CY9d5vj12uV9TYLcktewdD7BV"
    "Q1Hwkl8w7OxvnusPI197M1qf5Cfx3WoFb7eE1UsDopYL1nWAhE1Iusqq40bP9JUt972SJ9"
    "J5cD6s2T9LexfKYOD+TE8ZFsgQJ4frC57lSF7FKO8zfZUiW0LlSunCPI7AHQs1YedlvV3n"
    "J/hN6B97oCOqzKDVvN5vBr/4QWeflosldz9mmtGrqkxe97Y3jl2/VNn6WJ/Z12s9xS1FXo"
    "kZSJtv6l3Qorv0pF8TdV6ht8aZH6oksftk8AQ/L2SCt+j8UAqAvcob0e8InArhIXTeAw6n"
    "nIaao9/DC5gy7O+LTI0o6SSSEFZPJnaHAS5seQybV52IrcTOr2VcgsJtWWZfvqejeMk1+5"
    "k/fg2KUwA+X8RfuEilm3f8G6PZQsaORllS7kWpekSm0Yf2uvfdQ+3j9sTyzKpKXIkGTsV4"
    "ceROVoNaFkzPXc5SCGKqzBbrCIMVrprbq0Vh1eoqn3V64V9brRAWYjh5iFvc1nuVkQp5ak"
    "Z39KUoMUa9LsSdXNQF0YcwIgAR/OLiV16mM1SFg6M0Skqbo6n694lIuLWsE96g4oHYJvXz"
    "7NUrSlHqko05csuNQDGJ62TpZuU5J+dSrm2Zy65ZWBvOBtskT0Zd6y8E4UaojtwV6ZpKqU"
    "ysVX95nA9NXN9atGS0//B6DTaAI="
)
