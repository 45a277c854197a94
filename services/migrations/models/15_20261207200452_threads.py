# ruff: noqa: N999 (aerich names migration files "{number}_{timestamp}_{name}.py")
"""imgate migration 15_20261207200452_threads.

Written by ``python -m services.migrations.make``: aerich's SQL for each dialect; the runner
(services/migrations/runner.py) applies it in one transaction with the others pending.

Threads (issue 28): two nullable ``messages`` columns (``thread``, a reply's root id, and
``tseq``, its place in the thread; unindexed, so a message without a thread costs no index
entry), and three tables owned by the message service: ``threads`` (a thread's counters, one row
per root with replies, listed by conversation and newest reply), ``thread_replies`` (a thread's
replies in order, for paging a thread; rows only for replies) and ``thread_reads`` (a member's
read marker in a thread, one row per member and thread at most). New tables and nullable
columns: no existing row is rewritten, on PostgreSQL nor on SQLite.
"""

from tortoise import BaseDBAsyncClient

from services.migrations.dialect import sql_for

RUN_IN_TRANSACTION = True

UPGRADE = {
    "sqlite": r"""
        CREATE TABLE IF NOT EXISTS "threads" (
        "root_id" VARCHAR(26) NOT NULL PRIMARY KEY,
        "conv" VARCHAR(140) NOT NULL,
        "root_seq" BIGINT NOT NULL,
        "replies" BIGINT NOT NULL,
        "last_id" VARCHAR(26) NOT NULL,
        "last_seq" BIGINT NOT NULL,
        "last_ts" BIGINT NOT NULL
        ) /* A thread's counters, one row per root message with at least one reply. */;
        CREATE INDEX IF NOT EXISTS "idx_threads_conv_e27236" ON "threads" ("conv", "last_ts");
        CREATE TABLE IF NOT EXISTS "thread_reads" (
        "id" INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
        "uid" VARCHAR(64) NOT NULL,
        "root_id" VARCHAR(26) NOT NULL,
        "conv" VARCHAR(140) NOT NULL,
        "read_tseq" BIGINT NOT NULL,
        CONSTRAINT "uid_thread_read_uid_0a4ecd" UNIQUE ("uid", "root_id")
        ) /* A member's read marker in one thread: at most one row per (member, thread), written only */;
        CREATE TABLE IF NOT EXISTS "thread_replies" (
        "id" INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
        "root_id" VARCHAR(26) NOT NULL,
        "seq" BIGINT NOT NULL,
        "tseq" BIGINT NOT NULL,
        "message_id" VARCHAR(26) NOT NULL,
        CONSTRAINT "uid_thread_repl_root_id_d25675" UNIQUE ("root_id", "seq"),
        CONSTRAINT "uid_thread_repl_root_id_be54c8" UNIQUE ("root_id", "tseq")
        ) /* A thread's reply, for paging a thread in order (history with ``thread``): written only */;
        ALTER TABLE "messages" ADD "thread" VARCHAR(26);
        ALTER TABLE "messages" ADD "tseq" BIGINT;
    """,
    "postgres": r"""
        CREATE TABLE IF NOT EXISTS "threads" (
        "root_id" VARCHAR(26) NOT NULL PRIMARY KEY,
        "conv" VARCHAR(140) NOT NULL,
        "root_seq" BIGINT NOT NULL,
        "replies" BIGINT NOT NULL,
        "last_id" VARCHAR(26) NOT NULL,
        "last_seq" BIGINT NOT NULL,
        "last_ts" BIGINT NOT NULL
        );
        CREATE INDEX IF NOT EXISTS "idx_threads_conv_e27236" ON "threads" ("conv", "last_ts");
        COMMENT ON TABLE "threads" IS 'A thread''s counters, one row per root message with at least one reply.';
        CREATE TABLE IF NOT EXISTS "thread_reads" (
        "id" BIGSERIAL NOT NULL PRIMARY KEY,
        "uid" VARCHAR(64) NOT NULL,
        "root_id" VARCHAR(26) NOT NULL,
        "conv" VARCHAR(140) NOT NULL,
        "read_tseq" BIGINT NOT NULL,
        CONSTRAINT "uid_thread_read_uid_0a4ecd" UNIQUE ("uid", "root_id")
        );
        COMMENT ON TABLE "thread_reads" IS 'A member''s read marker in one thread: at most one row per (member, thread), written only';
        CREATE TABLE IF NOT EXISTS "thread_replies" (
        "id" BIGSERIAL NOT NULL PRIMARY KEY,
        "root_id" VARCHAR(26) NOT NULL,
        "seq" BIGINT NOT NULL,
        "tseq" BIGINT NOT NULL,
        "message_id" VARCHAR(26) NOT NULL,
        CONSTRAINT "uid_thread_repl_root_id_d25675" UNIQUE ("root_id", "seq"),
        CONSTRAINT "uid_thread_repl_root_id_be54c8" UNIQUE ("root_id", "tseq")
        );
        COMMENT ON TABLE "thread_replies" IS 'A thread''s reply, for paging a thread in order (history with ``thread``): written only';
        ALTER TABLE "messages" ADD "thread" VARCHAR(26);
        ALTER TABLE "messages" ADD "tseq" BIGINT;
    """,
}

DOWNGRADE = {
    "sqlite": r"""
        ALTER TABLE "messages" DROP COLUMN "tseq";
        ALTER TABLE "messages" DROP COLUMN "thread";
        DROP TABLE IF EXISTS "thread_reads";
        DROP TABLE IF EXISTS "thread_replies";
        DROP TABLE IF EXISTS "threads";
    """,
    "postgres": r"""
        ALTER TABLE "messages" DROP COLUMN "thread";
        ALTER TABLE "messages" DROP COLUMN "tseq";
        DROP TABLE IF EXISTS "thread_reads";
        DROP TABLE IF EXISTS "threads";
        DROP TABLE IF EXISTS "thread_replies";
    """,
}


async def upgrade(db: BaseDBAsyncClient) -> str:
    return sql_for(UPGRADE, db)


async def downgrade(db: BaseDBAsyncClient) -> str:
    return sql_for(DOWNGRADE, db)


MODELS_STATE = (
    "eJztXW1z2zgO/iscf6lz46aJ83rpl0vSdq+7bdJJ09udaXZsWqJtbWRSK8pxfb389yOoF0"
    "u2JIuO5cgKv7QxCVASRAEPQBD82Rgxk9h895y4ljFsnKGfDYpHRPwx19NCDew4s3Zo8HDP"
    "lqR4RtPjnosNT7T2sc2JaDIJN1zL8SxGRSsd2zY0MkMQWnQwaxpT6+8x6XhsQLwhcUXH9z"
    "9Fs0VN8oPw8Kdz3+lbxDYTt2qZcG3Z3vGmjmz7SL0PkhCu1usYzB6P6IzYmXpDRiNqi3rQ"
    "OiCUuNgjMLznjuH24e6C5wyfyL/TGYl/izEek/Tx2PZij9vrzNoanc7V9W3n6/vbTqehIC"
    "CDURCuuFUun34At/C6vX94cnh6cHx4KkjkbUYtJ4/+pWeC8RmleK5uG4+yH3vYp5Ayngn1"
    "gbgcbmlBspdD7KaLNsYyJ19x4/PyDaWZJ+CwYSbh2azahIhH+EfHJnTgwafRPjrKEeh/zm"
    "8u/31+0xRUO3BJJj4D/+u4Crrafh9IfSZl+KgUJByQ11C6+3t7BaQrqDKlK/uS0hVX9Ij/"
    "aScl/OvX66t0CcdY5qRsWoaH/odsiy/oii2Qdo5wQRgw8ojzv+24TJufz/+YF/flp+sLKR"
    "zGvYErR5EDXAjRg4Lu38e0CTT0sHE/wa7ZWehhbZZFu9g1ao/mWzDFAylIeGJ4vsBkvet9"
    "pH2WZsyCnlxjZo0G4q12RsTDhSxa4zcyffOA7TERBIbHEe6xsYeEDUOgW3uYE2R5nNh91I"
    "RGbgzJCKNAV+7sNuZe3zrGe4ItvSdTFYUUkK9HIT2vPU2oo+PDAtro+DBTGUHXEvsKr1jJ"
    "uoYMNdT+a7OtFVFB52Nv+P4B7EgapI4681G1IOsQoOPFFNG54xBqvmbUniKbDRDrI5c8MA"
    "MDgdAj1ESmxWF43hI92ES9KRIXcKeo57J74iKPoXvLuBc27kEoFsJBo/BFDVXmhdbsBlxY"
    "g5fiCfyz3T44OGnvHRyfHh2enByd7kUuwWJXnm9w8fEXcA8SH9pyf2GcJv5sbTZOlX4ddN"
    "m6TMdMtCZ5sAwlWzHjWEnAweytpnwP2gXke9DOlC90JeV7L55LCfQE9DWcvPvHRbyw42wn"
    "7HheuL71Kq6VffrlWnkbRLsxxVwR2PNOqp1bYeJpGvCJd+dCH199CRAgKIuCH4qwYQgkgS"
    "QX6jMXMSp8JjkUQBT4NebEfYskcBE+FPr67/PX7aNjZHHEPeYSMwXrrG9cDW0q/AVtD7TZ"
    "fqf4GZFN5UxEydDGsbEnVNZIRcRxns0JudHYUhFLu9AZYj5UEXKSS8fPlqoKwyUgig5OCe"
    "fnmcIkn8aVilZx9gLID8dyCVd+AUm+lV7Acn+0rqBkJn6IsN2vMP+TfCWJ/yVMf2owE25L"
    "QcnHeTZoSf/i/iJ8+Wr+tICWP81U8qfzOt7G3OsIX0p9ls9z6nm+heGDb1x6xQtxA9neyg"
    "sYgP9dLFBQSgLSczqINQR92Z64/F9B0iF97dyY/XYR1SuosiO17QX1GyzapcWaGLMJphku"
    "eYxtTtA9wVeWpKOWzWbLXFxff4KRo2yZi49zOvXq2+eL90L4UvSCyPIyIIV2aV6urbtkFF"
    "J2cCCoBZuX6M+1fUaMsmCw/JoSFGc7Q92uefYTP5797D12u6i5f7a/g5grmgdnPweWKRp3"
    "xQ+Jsjj5W5BYXKYkiR9ipDH1iLsYOy/vMmsOpWcbkJpa6v3DQtmWhznZlod7y4y1XlYt1U"
    "8S38QKPlLAtTmjsbf1FmNB8iM+6KipkTm2+iVltIvkDbSz8wbaC3kDUmSqyQMxJj3DV5vh"
    "GpQ+8wvQPm6ZPi6bUD+YVFS8EUP9lPb6F+lGhMItdbBtq8h4jq1+kl4z/ovJq+MSQ3GLUz"
    "r3k3Y7VUz4m9jslMiysJT2SQbkepqnTHOF8Ez8exj1ggWAOcASMH747YbYUSxlTvBBxOWz"
    "HGQLYcpjOL/C1mCaPJYZvwqklRK5mskxO2YVe2EFUjtleuUrjgKuoeXIPSZyZwn3xItCFp"
    "VpmPFgU0oq5+rjpMSbvsvAm+wUTt2fOpOzOlhaZ3JuHvnBR6QekopzaYd9NX/xL2ZRsoLs"
    "k3xa+isGBEl/lVBsjEunqqycEsdspUhJSL/BSMkoAkNbgb4TTubYU04FiHh0HoBCHoDwB6"
    "myqGdMWtYqORcCtCsu3sRYarg0ubal4AXPPSn0RYl/YC6xBvQ3MpVy/yhuEtPUvT0ZORFb"
    "JvcsP100u3gS+Yrx+SZkIJ6c+JP58vzr5fm7943H58lY+eyHDRupLj9dnqcShB0LO/2+6U"
    "QBG5FFJLD4ybm4vzTvPp/hjt7RiykSLl0LUk4wl54+66N/Ydt+xc9knonLJhx1u4mUmm7X"
    "Tz3hwANE/nVecTSm4L/c0fDJULPb9dNWcI89yDI9fnBhhN174u7sot9dy/MIhTiDP5K8Nz"
    "GUkAblQiBimJa/j7TPXBhZEnA0sbxh+GT8rRh1JC5g+s3JkVxiiAfKjloEPm34SQIInQ9e"
    "fF/s1bGMysUy0pVqvhnTNizfhsWRgrJTt3FPuiZTvKrhua1fma1Iqutn3zalAwe/awlw8I"
    "1gceAg6VtB7QVhTg2CHIEMEmF9Yeab0NCC5NIdsNnUhDZOxARwW8iwTNnqEuTPkbNUyFHO"
    "pe4oGPW+5XIPDawHAQAG2Hndd4lALK7gETfQChJjxcAmskwychgUrkQwaGYprTnL3kLfG/"
    "5NSEjw1HWMF5dGu66sN23ktZF/MUZ+pnCKTuoZRw2ndQmVEhTDWxpFFRatlI6CbEP6Ggq3"
    "hEpx5EdKHtutaM0QbkBfhzyqHFnevv/jNhH8XshYG02Dnk/XV7+E5PNpbHNbPbFf3rpozm"
    "BIr7MEV88SjAdAFXM103Y0aNkryF5Xodx4uRrHTqkknz3TIwY9zVef5lKIwuNXwShxnpJM"
    "6fZ76LE6QKa1yvaoBJtO+VlVrfQtm3QUz6iI89Rugpfg4wzHo56qjBNMWshLhey45MEiEx"
    "UDGWPRJnJ1E9lnLixppOVbZcs+waSl/wQcPoSECDXNEnLUwc8vG514ygFtT6chr4BJqrW0"
    "+sGy85ZXZXerwBJrB6BS8YL7Y8dm2JQ5Vq64vXA1FLmkT1womI+alodGeIqGzDYRhyOAsI"
    "2w52FjCJEN/naWoBWU0m/MveiyrnNHZ92wLwzSvkKg2O2+6XYjRNPtQuLWkMkLmGxC4WZa"
    "cg13MpQrq2JwP+sK2QTDYq1ovKPBXUOSmLhNQg1iBqchiW5OgmyyadSE/G+SoyYnLhQ552"
    "/Cle83gf3hu870ySe86ayt58zaCr80tTWaJFf99qOt3xA+5zmGVZJsrTKJvlip6cdfrCWp"
    "x45VPO3Y31cRtxZ46b7ipTyQfLyo1eG2hEbfRdeTIF05lsqLAvrWLO3YbxemLjJ8Zwjf0c"
    "D2jCmMF6YW+42vOBIGK55dvIvOhakUKB3q7Fkjy+O7MF+AtdtdSF1q3dFJkLI8hjX4wE7N"
    "CMQFbGbcF7RJs/QjMVV1XnE1LZROOSo35ag6CKCGmXQ6s+sZg/O+Gez0lJBXgqmGOqSEAL"
    "1ey34xAZ5bP/qZAnpvo7hoNu71Y6eFoa9PLiBdUGqZt+QeOZdNJDB0GfMiFCp3nmEPIh4C"
    "S0oyWEdOQ8frGDYdQAfPtxRDv0UhipXjE2wM/XFbPqz10+1TcG1rBqcFdXKfHlSzhmaL8F"
    "mhaihAiiCkioZYjGwiNvbuaDOgkyn+dAzbB0XX/u6uf0OCBvL7+U4rLH79DzGiP5xHuBfI"
    "AN2KFv+R5WqDjBxxee/c37rYQpRMIgZ//0AruoQUv3grCFOhC8Qfyqg9LK+aDd3hZSoimx"
    "iLhjUZsEaj9edC63J2qtc1inFpw/ukJDKLKMKdGJMW/cqil6p+hSLntd1MUFKF8y2p4l/P"
    "+b0V5eVrIfpKuVM3uS7VTUG3qqPkW0VFQ2IFQcJyo/54Z+D3yMh83Dtq+oytgEi4CKErA1"
    "VCUrytci50RyPPKhge1hVglRyId+Ef4bIwN/A8mhTW4MEb42xE4DJChlCdBLbyZa5gR8VJ"
    "QpdAV1WtzAec54Posg3llVWtgD9dKRGvH4ZpD7pkDxpspXpeYoJNo61tRluwsSsHbgX7vg"
    "rgrcixV4pmB5HevkAnDh7IAGgYRgVcBPVUUHNoQQmXqR8gDnFNt7tztgxvlXGZO9oPoJR4"
    "3pbAUGIoxxYTKQpsGwK+cUSZhG+Qiij+lNMaEeq502yEFbMOUQmYWJuXVg9Ow65Kwi6NDX"
    "QSQV1m+bPtYNBCl0a3MjlJzy3+EhRKRdDYOwJL4V9cwmEvQhogm6PIxWSmpO04ceJloCz7"
    "LeQFg/wraVBSJc2xLbGgbc+7T5Ts8b8DBeHOOGqomw/aBQR80M4UMHTNHQ1KbYumCDj3GI"
    "YZkz6GQeXICxt7wscdqUznOE/tDrtd/3TWaaKbPjmbUaVjQEP6jRm/bTu3uSLA+Yp5Vt8y"
    "cNbpF4n+XNBMY5QF45jXlKA4m4wvwoIqnGWJmjjZ6cEuZTqVnRxyUsMVXkh53VlMzl376H"
    "pfcqWVlcbtm8ftPWYqFcIL6Z9UZqZqFjlHqKXUmTFcglcp05bk02BoG5cd4/b4cuxylnpM"
    "dQpVYdvdMSRDQRN+G+4LSRhTywy3iAizCobU99ZRU1zZeiBuuF3ExRQOgMJ9D/K4vBQjXs"
    "L4Oh63Td/d9tj1WuVm6YBcyRGMzD0IS3O0i+qQdQl5+8+0rojtDiqWvX8g8njMrIpmfn+u"
    "vQ4XJwmQFk4aCs5xis51mmQd2DhXVsU/PtIcu3B5JCbOGLKtsYecMR8uWOySrnNHm5AKBJ"
    "tGXcQJdo2hnxQkLrsD21v5eER20Tt5omhwWFXQamrvvepfaJ6V1+v3m0oW1n7li7VNX4SK"
    "/ZX10sxS2JVrkUBFd/5iPYXIL7CA/wbbZlATVD8bez32Y+cMuUS8nvAIYHjA16zfR7DD3w"
    "Zyr4VMlzkO8Y87tugDti0zPQJcylVSXUgPu+JnoHBi6kc7k5X52PLMTOL1KawsxtnK0n11"
    "fRvayG/cyDt4CqV7VYL2MRYdt39C3B4LL2jkpKUuZGqXOEttPP72/uHJ4enB8WGkUaKWPE"
    "WyqDQo+eEpo9UYk1bXK6eDaFehAiUeiOsypcNmk1w1PHPi6KiIvTw6yjaY0Fcpr+xWAsxG"
    "hmMW9LaW+mY+Ti3onv0unBoCXpP0niBvBsvEmDOEKfpw+Vm4TgMLBglSZ+4JhUMD0PmXKx"
    "6uxYWtaEJ6Q8bu0bebT4suWqlXylvpiydcygG0n1YlTbcti351SubZnrzljQm5SLJndqrn"
    "6ULaslQ0CuKNGGoo26P9IouqgipTvrJPA9NnV9cVQUs3xF9HTMNKUV8uUnIDqmIwSXHLXz"
    "JYFdglMmJ/WRp6VGcu50GPKgcpt78OcFUhXq3yunx9oyDciKGG4tX70rZSRVcEblxAEf00"
    "rOF35AKNHpCUgjICZSgvQPTic4WmbR6y0BavvC1KwZegIN4YS/3gmj6zZyu1R0WM3heX9T"
    "MOZA67cg2f4xOVYPqKGrrnVLUVOr1lXWog26bJ/xUkHdLXrvzF+jUufhBCV1r5nXHUTryl"
    "xJG5h71xil3LlvCMo3YSLqV08tgxV4rUJ/k0ithGFHHJqCcM/w0R4uepuQ1zFLmYwvBpO6"
    "5PXKZb7RDRoH3qysznPPyhferyMgXgM1CQbUivvekC2M4wiOOlBSxya/XF2XS1PoVqfR75"
    "kYJAclIyAvraobz2XhGUJ6iyV/L2FlCejg29HFT3zZHbRFLQXNCTi+LGkuYZA0P3ROls94"
    "BcB4aUA0NsQtXgQ8Sg8cNy/KDDbuveDJDYp2ipSTekr6Fbsd/Os1azUqgnOaVQTxbibtZ/"
    "06pU551KEnBozKDoOceEPsTto2OlYGfEUcOJvX6dXO2s5LqGhmKhIK7sT4cs2pdW8KUHjB"
    "LlSR5jWmmGL9+RWM8J/qxe3+P/AVTaVVw="
)
