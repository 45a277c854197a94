# ruff: noqa: N999 (aerich names migration files "{number}_{timestamp}_{name}.py")
"""imgate migration 11_20261207164509_mentions.

Written by ``python -m services.migrations.make``: aerich's SQL for each dialect; the runner
(services/migrations/runner.py) applies it in one transaction with the others pending.

Mentions (issue 28): the ``mentions`` table (a row per mentioned member of a message, counted by
``conversations`` above the member's read marker) and two nullable group columns, ``mention_all``
(who may mention @all; null is the default, "admins") and ``mention_all_recent`` (the group's
latest @all times: its rate). A new table and two nullable columns: no existing row is rewritten,
on PostgreSQL nor on SQLite.
"""

from tortoise import BaseDBAsyncClient

from services.migrations.dialect import sql_for

RUN_IN_TRANSACTION = True

UPGRADE = {
    "sqlite": r"""
        CREATE TABLE IF NOT EXISTS "mentions" (
        "id" INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
        "conv" VARCHAR(140) NOT NULL,
        "seq" BIGINT NOT NULL,
        "uid" VARCHAR(64) NOT NULL,
        CONSTRAINT "uid_mentions_uid_406760" UNIQUE ("uid", "conv", "seq")
        ) /* A member mentioned by a message. */;
        CREATE INDEX IF NOT EXISTS "idx_mentions_conv_52d741" ON "mentions" ("conv", "seq");
        ALTER TABLE "conversations" ADD "mention_all" VARCHAR(8);
        ALTER TABLE "conversations" ADD "mention_all_recent" JSON;
    """,
    "postgres": r"""
        CREATE TABLE IF NOT EXISTS "mentions" (
        "id" BIGSERIAL NOT NULL PRIMARY KEY,
        "conv" VARCHAR(140) NOT NULL,
        "seq" BIGINT NOT NULL,
        "uid" VARCHAR(64) NOT NULL,
        CONSTRAINT "uid_mentions_uid_406760" UNIQUE ("uid", "conv", "seq")
        );
        CREATE INDEX IF NOT EXISTS "idx_mentions_conv_52d741" ON "mentions" ("conv", "seq");
        COMMENT ON TABLE "mentions" IS 'A member mentioned by a message.';
        ALTER TABLE "conversations" ADD "mention_all" VARCHAR(8);
        ALTER TABLE "conversations" ADD "mention_all_recent" JSONB;
    """,
}

DOWNGRADE = {
    "sqlite": r"""
        ALTER TABLE "conversations" DROP COLUMN "mention_all";
        ALTER TABLE "conversations" DROP COLUMN "mention_all_recent";
        DROP TABLE IF EXISTS "mentions";
    """,
    "postgres": r"""
        ALTER TABLE "conversations" DROP COLUMN "mention_all";
        ALTER TABLE "conversations" DROP COLUMN "mention_all_recent";
        DROP TABLE IF EXISTS "mentions";
    """,
}


async def upgrade(db: BaseDBAsyncClient) -> str:
    return sql_for(UPGRADE, db)


async def downgrade(db: BaseDBAsyncClient) -> str:
    return sql_for(DOWNGRADE, db)


MODELS_STATE = (
    "eJztXW1T27gW/iuafFmYSXshhJfLfrlA291uC3Qovbsz7U5QbCVR40iuZAPZXv77leSX2I"
    "ltrBAHx+gTRDpHth/L501HRz9bE2ojh78+QQxbo9Yx+NkicILEP3M9bdCCrjtrlw0e7DuK"
    "FM5o+txj0PJE6wA6HIkmG3GLYdfDlIhW4juObKSWIMRkOGvyCf7ho55Hh8gbISY6vv4tmj"
    "Gx0T3i0U933Btg5NipW8W2vLZq73lTV7W9J947RSiv1u9Z1PEnZEbsTr0RJTE1Jp5sHSKC"
    "GPSQHN5jvrx9eXfhc0ZPFNzpjCS4xQSPjQbQd7zE4/Z7s7ZWr3dxed37/Pa612tpAGRRIs"
    "EVt8rV0w/lLbzq7HYPu0d7B90jQaJuM245fAguPQMmYFTwXFy3HlQ/9GBAoTCegXqLGJe3"
    "tIDs2QiybGgTLHP4ihufxzdCswjgqGGG8GxWrQPiCbzvOYgMPflpdPb3CwD978nV2e8nV1"
    "uCaltekorPIPg6LsKuTtAnUZ+hLD8qDYRD8gaiu7uzUwJdQZWLrupLoyuu6KHg004j/Mfn"
    "y4tshBMscyjb2PLA/4CD+YKs2AC0C8CVYMiRJ5z/cJKYbp2f/DUP99nHy1MFDuXekKlR1A"
    "CnAnopoAfjhDSRDX1oje8gs3sLPbRD82gXuyadyXwLJHCogJRPLJ8vVFlv+u/JgGYps7Cn"
    "UJnhyVC81d4EebCURmt9QNN/3ULHR4LA8jiAfep7QOgwIGVrH3IEsMeRMwBbspFbIzSBIJ"
    "SV269bc69vFeM9QZeO0VRHIIXkqxFIz6tPU+LooFtCGh10c4WR7HpEv8pXrKVdI4YGSv+V"
    "6daaiKAT3xu9vZV6JMukjjuLrWpB1kOSjpcTRCeui4j9ihJnChw6BHQAGLqlFpQEQo4QG9"
    "iYy+F5W/RAG/SnQFyATUGf0TFiwKNgjK2x0HG3QrAgLiUKX5RQVV5oxW7AKR6+FE/g353O"
    "3t5hZ2fv4Gi/e3i4f7QTuwSLXUW+wen736R7kPrQHvcX/Cz486WZn4l+E2TZqlTHDFob3W"
    "JLS1fMOJYCOJy99cR3r1MC371OLr6yK43vWDyXltET0jdw8u4elPHCDvKdsIN5cAPtVV4q"
    "B/SPS+VNgHZtgrkmZs8bJXauhYonWYZPsrvQ9AnElzACBGVZ44cAaFnCkgCKCwwoA5QIn0"
    "kNJU0U+cvniP0KlOEifCjw+feTV539A4A54B5lyM6wdVY3rjFtavwFbY5ps/lO8TNaNrVT"
    "ERWbNq4DPSGyJjoQJ3nWB3KrtaEQK73QG0E+0gE5zWXiZ4+KCoshCUUPZoTzi1Rhms/YlZ"
    "pacfYC0L2LGeLaLyDNt9QLeNwfbapRMoNfRtjGS8z/NF9F8L+E6U8sasvb0hDySZ41atLv"
    "PFiEr17MH5WQ8ke5Qv5oXsY7kHs94Uvpz/J5TjPPNzB88IUrr3ghbqDa20UBA+l/lwsUVJ"
    "KA9JwOYgONvnxPXP3VQDqib5wbs9spI3oFVX6ktrMgfsNFu6xYE6UOgiTHJU+wzQHdF3xV"
    "IR23rDdb5vTy8qMcOc6WOX0/J1MvvpyfvhXgK+gFEfZyTArj0rxcXXdGiUzZgSFQCzov1V"
    "+o+6wEZclg+SVBIMl2DG5u7OOf8OH4Z//h5gZs7R7vbgPKRPPw+OcQ26LxtfihrCyOfggS"
    "zFVKkvghRvKJh9hi7Ly6y6w4lJ6vQBqqqXe7pbItuwXZlt2dx5S1WVat1E8S38QSPlLItT"
    "6lsbPxGmMB+Qkf9vTEyBxb85IyOmXyBjr5eQOdhbwBBZlu8kCCyczw5Wa4MUqf+QUYH7dK"
    "H5fekSCYVBbemKF5Qnv1i3QTROQt9aDj6GA8x9Y8pFds/yXw6jFkaW5xyuZ+0m6nmoFfs8"
    "1OyRc36YeR6jnNGjK++3CFnNjpn3snYWjgXA2ygfr0IZqJUWs4cx6qDLSEaGWEWGY45gdX"
    "Ei+sRA6iygP8hYOQa4RdtRlCbYHgnnhRABOVL5iMimTkHC4/TkZg5KuKEKlO4X38bVIO62"
    "P0mZTD9Zso8iPSj50kuYxnuZxj851igpbAPs1n0F8ycoUGy8QME1wmp2Lp3C3qaLn0Ef0a"
    "XfpJbAxtnjfke9pr1jGPWbDWWLB2MSHaUM+YDNY6yQHCaNdcZUiwNHANbWVrlgueexr0Rc"
    "TfUYbwkHxAU4X7e3GTkGRuQslZvN8w3PP8dNHM4F3sKybnm8BAPDkKJvPZyeezkzdvWw/P"
    "k1pxHsS3WpkuP3k8oSKMj5V2+gPVCUI2pKodQPGTc3F/Wd59McM38o2cToFw6doyNwJy5e"
    "nTAfgPdJxf+LFKiGD0joObm1Tux81NkCPBJY8kCq7zCwc+kf7LNxI9Gdi6uQnyK2Cf3qp6"
    "MkFwYQLZGLHt1+BPhj0PERlnCEZS9yaGEmgQLgARw7SDDY8DyuTIioCDO+yNoifjv4pRJ+"
    "ICdtCcHokhSzxQftQi9GmjT1IaofPBi6+LvSaWUbtYRrZQLVZjRocV67CkpaDt1K3dk27I"
    "FK9reG7jlxBrkpN5HuimbMMh6HrEcAiUYHnDQdG3wyIBQp1aCLjCMkiF9YWa35INbZkFuS"
    "11NrFlG0diArA2sLCtWhkCwRw5zjQ5qrnUNyKV+gAz7oEhvhUGwBC6rwYMCYuFCR5xA+0w"
    "g1MMbANso4lLZYVFIAfNrfk0p9nb4GsruAllEjx1HePF5XuuKj3LKHmj5F+Mkp8JnLKTes"
    "bRwGldwZZ+zfCWsaJKQ6vQ0cA2om8guBWUNEP3GQlX16I1B9yQvgl5bQVYXr/96zoV/F5I"
    "rZpMw56Plxe/ReTz+VZzexJhUIe5bHJbRG/S2fTS2TLSCzPS1B5NKsxKvTfYa2BvyiWuva"
    "6K62SUPM+f6TGDmebLT3MFovD4dWyUJE9FqnTzPfREwRobL7OPJ8VmUn6WFSsD7KCe5mEK"
    "SZ7GTfAKfJyRP+nrYpxiMiDXORwflAv+JLQIktkWuQWFY4p2iZrCbpJ4pcWC4hXrsESpyb"
    "SvkWA2mfbrl8+muG/FlWcpcTDJALgwHXPGZNIxdVJfTSHlygspm9DHmks9UKJ1vmdEvzbl"
    "t2mFBmpiOF9QDw+wlVtbLNVfaDSTBKVGbbEkW3xihtzTCrZgutOjQDzGVHVyWe1LUjJ6Bx"
    "C0RhmHI658dHMoR62FlbHb12+396mtFRCP6M15uU8IiJuySy+3FmhSH5/5jNPMchUZVKV1"
    "d89SDCVV+PUIAVlJLa1MsQ1GUMwIW6rVxBFYW+LK+BYxjLjKDGWQyI0gcOAJjYy9DCVewf"
    "gmHrdJ393m6PVGJYWZgFzFEQxVflJXfCSYTG2LjdPd4caQ3MO+U/2F+jrcoqF35He0nyPe"
    "33GXt3GT3pHk5s1gG6ntM3l5ICaOj0QL9IDrB0eSzW0gqeQ638iW3GHiQKnKOYLMGgE1a8"
    "Vlt+XWFO5P0GvwRu0sDjethK3mSM3af6FFWj6a7HrKPs3VQJW0+iwg41e+XN30SYjYP2g/"
    "Sy1FXYUaSYro3nfa14j8Shbpv8mdMGBLin7qe316v30MGBKvJyoFIB/wFR0MgE887Ehyrw"
    "1sRl0XBWUPMLmFDs44kLmyq2S6kB5k4mcocBLixziTtfnYitRM6vVprCwm2aqSfU19G0bJ"
    "r13Ju3DqUJiBcn7QPsFi4vZPiNtD4QVN3KzUhVzpkmRpjMff2e0edo/2DrqxRIlbigRJxv"
    "EH6N7TtlYTTEZcL50OYlyFGhwuhBijWpvO01xN2GM6py7398voy/39fIUp+2rllV0rA7OV"
    "45iFve1HfbPATi3pnv0pnBokvSblPcm8GagSY44BJODd2blwnYZYDhKmzowRacuuk08XPF"
    "qLi1rBHeqPKB2DL1cfF120Sq9UtNKXTLhUAxg/rU6SblMW/ZqUzLM5ectrA3nF5acDQaMB"
    "b8zQQGz3d8ssqgqqXHxVnzFMn11c18RaukLBOmKWrRT3FVpKLKQqZyZpbvlLB6tCvYQm9D"
    "s2pkd95nKR6VHnIGWTyhHUy8RrVF5XIG80wI0ZGgiv2Ze2kSK6JubGqUOtcZatEXQUGhp9"
    "SVKJlREKQ3UBZBafazRtiywLo/Gq26IUfgka8CZYmmeuVVBcxyi9F6P0PjEqS09lqb2oq1"
    "DxuQFRBaqvrKJ7TlFbozLvqxID+TpN/dVAOqJvXPmL1UtceCtA11r5nXE0Dt5K4sjy6Gw/"
    "Q68VFHSPORqHcCWnFPiuvVSkPs1nrIhNtCLOKPGE4r9CAn6emdswR1FoU1gBbY8FxFW61S"
    "4SDcanrs18LrI/jE9dXaYA0jvsJKI33nQJ286ykKt/SnWSzVTr06jWl31CR0FKxlNO6Kiz"
    "ldfZKWPlCar8lbydBSvPxIZejlX3xVXbRDKsubCn0IrzFc0zBoY0q4M/pS54zcy1NQeG6B"
    "3RMx9iBmM/PG4/mLDbqjcDpPYpYj10I/oGuhW7nSJtNSuFelhQCvVwIe6G/8mqUl10eGXI"
    "YWwGTc85AfoIdvYPtIKdMUcDJ3YFp1fWOiu5qaGhRCiIa/vTEYvxpTV86SElSHuSJ5gqOk"
    "OqmRP8Wb2+h/8DZrMOaQ=="
)
