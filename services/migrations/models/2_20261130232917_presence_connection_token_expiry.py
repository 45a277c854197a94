# ruff: noqa: N999 (aerich names migration files "{number}_{timestamp}_{name}.py")
"""imgate migration 2_20261130232917_presence_connection_token_expiry.

Written by ``python -m services.migrations.make``: aerich's SQL for each dialect; the runner
(services/migrations/runner.py) applies it in one transaction with the others pending.

Cluster mode: the presence table's ``conn`` (the connection that made a device online; on
PostgreSQL the column's default fills the existing rows and is then dropped, as the models give no
database default), and an index on the tokens' expiry (imgate api closes the RabbitMQ connections
of tokens as they expire).
"""

from tortoise import BaseDBAsyncClient

from services.migrations.dialect import sql_for

RUN_IN_TRANSACTION = True

UPGRADE = {
    "sqlite": r"""
        ALTER TABLE "device_presence" ADD "conn" VARCHAR(128) NOT NULL DEFAULT '';
        CREATE INDEX "idx_device_toke_expires_3748d6" ON "device_tokens" ("expires_at");
        CREATE INDEX "idx_device_pres_conn_7a78b3" ON "device_presence" ("conn");
    """,
    "postgres": r"""
        ALTER TABLE "device_presence" ADD "conn" VARCHAR(128) NOT NULL DEFAULT '';
        ALTER TABLE "device_presence" ALTER COLUMN "conn" DROP DEFAULT;
        CREATE INDEX IF NOT EXISTS "idx_device_toke_expires_3748d6" ON "device_tokens" ("expires_at");
        CREATE INDEX IF NOT EXISTS "idx_device_pres_conn_7a78b3" ON "device_presence" ("conn");
    """,
}

DOWNGRADE = {
    "sqlite": r"""
        DROP INDEX IF EXISTS "idx_device_pres_conn_7a78b3";
        DROP INDEX IF EXISTS "idx_device_toke_expires_3748d6";
        ALTER TABLE "device_presence" DROP COLUMN "conn";
    """,
    "postgres": r"""
        DROP INDEX IF EXISTS "idx_device_pres_conn_7a78b3";
        DROP INDEX IF EXISTS "idx_device_toke_expires_3748d6";
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
    "PEK9+AtN5cN+B5PlrXoCSGX62wDeeY/2m9JcFf0+m/JrTqG9dsYYZP6fZmEZFSvKQcgVpK"
    "YcZrBs41dIb5DEX/rYB0JF+78G6vdVxmAat1nL+CpfqmWEqQzMji4JS6CJIcqpJQmwK6K/"
    "WWhfSkZbVVBKfX15/UyJMqgtOLKZt69e3y9FyCr6GXQljkuDoT6r1dX3dGiSplgCFQMz4v"
    "1V/o++yEZMlFxGuCQFLtBNzeOieP8Onksft0ewu29k72tgFlsrl/8tjHjmx8J3+4kAuLox"
    "9SBHNdqiF/yJF8IhCbXVNc3mEWvMSY70Bq6qn32qWq0NoFVWjt3eectUk3TfAu46zzXfWM"
    "o44ekGpuI6m1Oqexu/EeYwb5Ee9b1czIlFr9ktWtMvnUVn4+tTWTT9WQVU2qJpTMDJ9vhp"
    "ug9JVvgOG4y+S49J4Ei0ll4Z0o1M9oL2a9pgKhSrAcNOqGS3ZTJiZU/PDxC3In7GcK+5Aj"
    "XepBNtCwPEWTLGoNZ8rTMhlniFYG14xxzGeZiRtWokhFF4r8xEGoNcCerpbVNbJcyBsFMN"
    "EFJUl6mFGUMv84GQzxu6bKulOGYf+YmpT18X6mJmU1tjqdaINOdRKZ1DIh9nwR3r8UEzQH"
    "9mk9g/6cFB715lk8SWiZ5PLcyX3qVuI2kfwKuc1oEgxt3LLgyBeVk3cTHZO5q5C58zAhla"
    "GOlQzWVbKkMmivuNyaUKlhMmFhyZsZ5p4GfRbxD5Qh3Ccf0VjjfiFPEpLMKuWcLOaG4Z7H"
    "02Uzg/cTrpicbxIDeeUomMxnna9nnffnjafXyTFfIs6h9vMZlD/oahZzfi1UmvSH8s3wZR"
    "BJzG0EPMTS7Bzc3m6phqbK6m7f3mpGL9s4kjeZNYGNHd3KEAjmwUnGusCyDvU3UenmHmZc"
    "gD6+Qxz0obfTYwgByqSOPIFmmJGWAzsAO2jkUbWTBlCD5r7bG689qBhS3rXvjeAkVJP90u"
    "WIN5e/XlS6KX/dIdsAFrsc42+K/U3Sq1cmYCtnvbUjX7HBKTupY40aTuslvLpRMUqtbYS6"
    "eGg1OhWwjeRrCO4SXl1HDxnJ/hvZmgNuKF+HjGgBljfnf92kOOzMfmGjcdjz6frq10h8eh"
    "OxqRprGOy3lcY6f5+2SP5Fm7RtDuYL26MttS4mw/OoOLYs7kkdg/382JttMd5OTXuw78Vn"
    "ORuQWhXK3RljItEssTmGlxRe6Ntd36NscfiuvakIWJsJ3Sxg5qYiwOxSsRKAF7+FAiUuJh"
    "kAF6aNYiWTNqqSojM7gix9RxAT2624Np+SShvVR/Irc36bVhm+JoHzFRW4h+3cl0FT/YVB"
    "M0lIVngZNKk22fpN1d6CLZjuFBTIyxjrTq5ez1SSjN4DBO1Bxi7fCx/d7C631sbKxO2rj9"
    "u71MnYzD5/bSuSNx9+eMHClnlP7u0udCX98ZnPOM18rSZDqrTvtmytUNKF3wwQUK++pp0p"
    "dsAAyhnhKLea2Mt1Sx4Z3yGGEdelLwySvvq3J6RHxiLDiS9hfLMet0nP3eb49Vplvc2C3J"
    "JXMPR+AVXNR0LJvIOzcb47rHzN/WpNqr/QX4c1qNW+XRMVrE4KWO8ZFgIR9SKrqisN23+S"
    "1PdetkjfyeWAevMk/Wksn6nDAzlxfCRboACeH+ytO1Uhu5Tj/E22VAmtC5Ur5wgyewD0rJ"
    "WH3Va1t9wfoXfgva6ADqtyw1azN/zaP6FFXj6a7NWcfVqrhi5p8fveGF75dn3TZ2lif6fd"
    "LLcUdRV6JGWirX9pt8LKr1JR/E2V+gYfWqS+6NKH7RPAkLw90orfYzEA6gJ3aK8HfCKwq8"
    "RFEziMeh5ymmoPP0zuoIszviyytKNkUkgBmfwZGpyE+TFkcm0etiI3k7p9FTKLSbVl2b66"
    "3g3j5Ffu5D04dinMQDl/0T6hYtbtX7BuDyULGnlZpQu51iWpUhvG39prH7WP9w/bE4syaS"
    "kyJBn71aEHUTlaTSgZcz13OYihCmuwGyxijFZ6qy6tVYeXaOr9kWtFvW50gNnIIWZhb/NZ"
    "bhbEqSXp2Z+S1CDFmjR7UnUzUBfGnABIwIezS0md+lgNEpbODBFpqq7O5yse5eKiVnCPug"
    "NKh+Dbl0+zFG2pRyrK9CULLvUAhqetk6XblKRfnYp5NqdueWUgL3ibLBF9mLcsvBOFGmJ7"
    "sFcmqSqlcvHVfSYwfXVz/arR0tP/AdgiZ7c="
)
