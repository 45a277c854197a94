# ruff: noqa: N999 (aerich names migration files "{number}_{timestamp}_{name}.py")
"""imgate migration 17_20261207200912_disappearing.

Written by ``python -m services.migrations.make``: aerich's SQL for each dialect; the runner
(services/migrations/runner.py) applies it in one transaction with the others pending.

Disappearing messages (issue 28): a conversation's ``ttl`` (seconds; null: messages stay), a
message's ``expires_at`` (ms; set only on messages sent while the ttl was set) and a push job's
(a job still due when its message expires is dropped, not sent). The expiry sweep reads
``messages`` by ``expires_at`` through a partial index (``WHERE expires_at IS NOT NULL``, on
SQLite and PostgreSQL alike): a message without it adds no index entry, so a plain send costs
the same as before. Nullable columns and a new index: no existing row is rewritten.
"""

from tortoise import BaseDBAsyncClient

from services.migrations.dialect import sql_for

RUN_IN_TRANSACTION = True

UPGRADE = {
    "sqlite": r"""
        ALTER TABLE "conversations" ADD "ttl" INT;
        ALTER TABLE "messages" ADD "expires_at" BIGINT;
        ALTER TABLE "push_jobs" ADD "expires_at" BIGINT;
        CREATE INDEX IF NOT EXISTS "idx_messages_expires_at" ON "messages" ("expires_at") WHERE expires_at IS NOT NULL;
    """,
    "postgres": r"""
        ALTER TABLE "conversations" ADD "ttl" INT;
        ALTER TABLE "messages" ADD "expires_at" BIGINT;
        ALTER TABLE "push_jobs" ADD "expires_at" BIGINT;
        CREATE INDEX IF NOT EXISTS "idx_messages_expires_at" ON "messages" ("expires_at") WHERE expires_at IS NOT NULL;
    """,
}

DOWNGRADE = {
    "sqlite": r"""
        DROP INDEX IF EXISTS "idx_messages_expires_at";
        ALTER TABLE "conversations" DROP COLUMN "ttl";
        ALTER TABLE "messages" DROP COLUMN "expires_at";
        ALTER TABLE "push_jobs" DROP COLUMN "expires_at";
    """,
    "postgres": r"""
        DROP INDEX IF EXISTS "idx_messages_expires_at";
        ALTER TABLE "conversations" DROP COLUMN "ttl";
        ALTER TABLE "messages" DROP COLUMN "expires_at";
        ALTER TABLE "push_jobs" DROP COLUMN "expires_at";
    """,
}


async def upgrade(db: BaseDBAsyncClient) -> str:
    return sql_for(UPGRADE, db)


async def downgrade(db: BaseDBAsyncClient) -> str:
    return sql_for(DOWNGRADE, db)


MODELS_STATE = (
    "eJztXVtz27iS/isovcTeUjy2fInX87K2k5zJmcROOc7OqRqfkiASkjimAA1B2dHJ5r8vGg"
    "RvEkkRsihRDF4SC+gGySbYN3xofG+NmU1cfnBJPMcatS7Q9xbFYyL+mOtpoxaeTOJ2aPBx"
    "35WkOKbpc9/Dli9aB9jlRDTZhFueM/EdRkUrnbouNDJLEDp0GDdNqfP3lHR9NiT+iHii48"
    "9/i2aH2uQb4eHPyWN34BDXTt2qY8O1ZXvXn01k2wfqv5eEcLV+12LudExj4snMHzEaUTvU"
    "h9YhocTDPoHhfW8Ktw93p54zfKLgTmOS4BYTPDYZ4KnrJx63343bWt3uze1998u7+263pS"
    "Egi1EQrrhVLp9+CLfwunN08ubk/Pjs5FyQyNuMWt78CC4dCyZglOK5uW/9kP3YxwGFlHEs"
    "1CficbilBclej7CXLdoEy5x8xY3PyzeUZpGAw4ZYwvGs2oSIx/hb1yV06MOn0Tk9LRDo/1"
    "7eXf92ebcnqPbhkkx8BsHXcaO6OkEfSD2WMnxUGhJW5A2U7tHhYQnpCqpc6cq+tHTFFX0S"
    "fNppCf/zy+1NtoQTLHNSth3LR/+HXIcv6IodkHaBcEEYMPKY87/dpEz3Pl3+a17c1x9vr6"
    "RwGPeHnhxFDnAlRA8KevCY0CbQ0MfW4zP27O5CD+uwPNrFrnFnPN+CKR5KQcITw/Mpk/W2"
    "/4EOWJYxUz2FxswZD8Vb7Y6Jj0tZtNbvZPbLE3anRBBYPke4z6Y+EjYMgW7tY06Q43PiDt"
    "AeNHJrRMYYKV25f9Cae33rGO8FtvSRzHQUkiJfj0Larj1NqaOzkxLa6OwkVxlB1xL7Cq9Y"
    "y7qGDA3U/muzrTVRQZdTf/TuCexIlksddRZ71YKsS4COl1NEl5MJofZrRt0ZctkQsQHyyB"
    "OzMBAIPUJtZDschudt0YNt1J8hcQFvhvoeeyQe8hl6dKxHYeOehGIhHDQKX9RQVV5ozWHA"
    "lTP8WSKB/+50jo/fdA6Pz85PT968OT0/jEKCxa6i2ODqwz8gPEh9aMvjhWmW+PO12TRT+k"
    "3QZesyHbFobfLkWFq2IuZYScBq9tZTvsedEvI97uTKF7rS8n0Uz6Xl9Cj6Bk7eo7MyUdhZ"
    "fhB2Ni/cwHqV18oB/XKtvAui3Zhironb81aqnXth4mmW45PsLnR9AvUlnABBWdb5oQhblv"
    "AkkORCA+YhRkXMJIcCFwV+TTnxfkXScRExFPry2+XrzukZcjjiPvOIneHrrG9c49rU+Ava"
    "Hddm94PiLXo2tTMRFbs2Exf7QmWNdUSc5NmckFutHRWxtAvdEeYjHSGnuUz+bKmqsDwCou"
    "jijHR+kSlM8xm/UtMqxi+AfJs4HuHaLyDNt9ILWB6PNtUpicUPGbbHFeZ/mq8i8f8M059a"
    "zIbb0lDySZ4NWtK/eLAIX72aPy+h5c9zlfz5vI53Mfe7IpbSn+XznGae72D64CuXUfFC3k"
    "C2t4sSBhB/l0sUVAJA2maA2ECnLz8Sl/9rSDqkb1wYc9Qpo3oFVX6mtrOgftWiXVauiTGX"
    "YJoTkifY5gTdF3xVSTpq2Sxa5ur29iOMHKFlrj7M6dSbr5+u3gnhS9ELIsfPcSlMSPPz2r"
    "prRgGyg5WgFmxeqr/Q9lkJypLJ8ltKUJLtAvV69sV3/OPie/9Hr4f2ji6O9hHzRPPw4vvQ"
    "sUXjgfghvSxO/hYkDpeQJPFDjDSlPvEWc+fVXWbNqfR8A9JQS310UgpteVKAtjw5XGaszb"
    "JqpXGS+CZWiJEU1+aMxuHOW4wFyY/5sKunRubYmgfK6JTBDXTycQOdBdyAFJkueCDBZGb4"
    "ajPcOKVbfgEmxq0yxmXPNEgmlRVvxNA8pb3+RboxoXBLXey6OjKeY2uepNfs/yXk1fWIpb"
    "nFKZv7Rbudaib8TWx2SqEsHK19korcTPMl09z3M7RIPnDUz1Ieu7zy86K9vRp5rqRiGffV"
    "Ssqc56cY3/9+R9woKTUna5W6+iQH2UF/70c4pcJWNTN+VJkIVNLKSAHGcsxP/iVeWAmMrM"
    "SpvuJIcY2cidysI7focF+8KORQiWdNZu0yMLGrj5ORuPtTZjBlp4iO/20gsfUJSgwkdvMu"
    "NHxE+rm9JJfJfKwWeP/FHEpWkH2az0h/xcwqGayS005wNcjz2zS2kLlaKaeQfoMpp3HkDO"
    "1cGDOe+tqYiojHACo0ABUisKbaoo6ZjKx1wCvCaddcBUuwNHCNd21r6guRe1roixJ/zzzi"
    "DOnvZCbl/kHcJKaZm6RywCU7Jve8OF00e/g5ihWT803IQDw5CSbz9eWX68u371o/tgP9+R"
    "TkX1uZIT9dDvhR+dvSQX9gOpFiI7IaBxY/ORf3lxXdFzM80Ad6NUMipGsDdgdzGemzAfof"
    "7Lqv+IUE7HjsmaNeL4VN6vUCDA8HHiAKrvOKoymF+OWBhk+G9nq9AP+D++xJ1jsKkgtj7D"
    "0Sb/8A/eE5vk8o5BmCkeS9iaGENCgXAhHDtIMNuQPmwciSgKNnxx+FT8Z/FaOOxQXsoDk9"
    "kkcs8UD5WQsV04afJDih88mLPxd7TS6jdrmMbKVabMaMDSu2YUlPQTuo23gk3ZApXtf03M"
    "4vcdcEM/wpsE3ZjkPQtcRxCIxgecdB0rdVEQthTi2CJsIzSKX1hZnfg4Y2oHT3wWZTG9o4"
    "ERPAayPLsWWrR1AwRy4yXY5qLvVAwagPHI/7aOg8CQdgiCevBx4RHosneMQNtBXCWAxsI8"
    "cm4wmDCqAIBs2tSTZn2dvoz1ZwE9IlyFjH+N6KX3JySyyQiZ+eqoEWzoHYM/jWDV9bN72T"
    "NvxMW3IE8TLhB/rjt3d371BMiT58QeKzQjdfP34MHF6Diq4axGhcDeNq/DSuRqz2yk7qmK"
    "OB07qCwheaSTbjy5UWrZSOhmxD+gYKt4LCf8IpWRTuvWjNEa6ibwIsrkCW9+/+dZ9KwS8A"
    "EMcz1fPx9uYfIfk8KnFu5y4OqpWXhYCG9Ab0uTroM5mG1YTeZm1QMbLXkL0pKrrx6kMTN+"
    "NggPyZHjGYab76NJdC7PpMx0dJ8lRkSnc/Qk+UdbKdVXa7pdgM8GhVtTJwXNLVPHIkydO4"
    "CV5BjDOajvu6Mk4xGSEvFfLEI08OedYxkAkWYyJXN5ED5sHCShbqK1/2KSYj/Rf44SOAZe"
    "hplpCjCXF+1d6Jr53Q9g0Y+oU+Sa3r3DZU/vVaYH/vyHvLW2SX3e0SC+1dcFXLn18xnbgM"
    "2xJp54nbC9fEkUcGxIPzJ9Ce46MxnqERc23E4UQt7CLs+9gaQWaJ/xrD9NTJFK25F13VdR"
    "5o3A27AwH8Fzrqvd4vvV7kUfZ6AN8bMXkBmz1TuJm2XMl/Hsn1dTF4gL1DLsGwZC8aH6i6"
    "a4AKitsk1CK2OlxMdHOiMIWzqAkFXyZHe5x4cGYA/yVcSP9F2X9+MJm9+MBEg93bJnYv/N"
    "L01sjSXM3blbh+R2Sbx4LWSbKNwpN9djJB6J+dJQD0iVMefB7srklaC7x0d/lSHoCgL2p1"
    "uC2h0Q/Q7bMCrScA3UjRt2PwedAuTF1k+C4QfqDK9kwpjBcCzIPGVxwJg5XEmB+gS2EqRZ"
    "QEZSudsePzA5gvwNrrLQDY2g/0WQHXp4CBUHYqJhAXcJn1WNImxSA0MVUNuryeFspAvqqF"
    "fNXHA2ggktEg67aYiAjMYLev5XmlmBqoQypYIDFYgp8mwfPFGhF76hL7C6FpJymToNAL5i"
    "FpV+4UKOsQAzHkWPok3Osgz0sncBS6/AWuJPahPPqiixtdM8pczLnOaxwdnGxdT7pPLCZ+"
    "XmRsynC42pOBhDML6ZoHKnzrXi+8eq8XJIFgRHW/M2DCwTOpDZri/i3YeMoZXC46XzXYL/"
    "I8YpCreqCKX3jvPuwZkSWper0LBMfWyx0fPPgD7VkudsbhDtfoshPM+b6k8tviTTou5Jos"
    "2FPtuvmHuS7bAiL64UbkRPHn94ykusw2je1u0zCYdoNp31nRmniz0nhTd1nQ1EN/YRgkPA"
    "rhz2nhOxIsL0J31O0FbBreoWr66034BJOZ9atvqwv9wdIeSMiwwaJsyp9ubUabr32H0tZS"
    "h3XDeVSNsfY8luFN5+vviMFg81ZX3jajRBvElGAyCCaDaq9tlGNQ7c2GJtwHMOGMDO19BC"
    "DOT80GIOPSKdmA/BUPj5jkbVnSzmPPcgXfY8yPkpwyD4l9gKZxPyCDDVdZudh1DJuNdFDP"
    "txTs8CsK4QZyfIKtUTBuO8AfBNVxMgAI7Rj3IKjTZfUguQvNDuRswwM64eA1BNhjNBKBFy"
    "Rkp/4D3VN0siIPnUK1P9F1dHAQ3JCggXI8kGpVh37+lxgxGM4n3FcyQPeiJXhkafolxI/L"
    "e+dBpcE2ouQ5YgjK/bSjS0jxQ7YXU/HNiz+04RXhsXL5iVl4mZp+ZILFpGi1U7QmzVVtmk"
    "vOTv1jCBJcJvhf2YFUalNT9jGTEf3KopeqfoXDXRu7QlHRya47cnpxM+f3Thyr2wjR1yqc"
    "uisMqe5KhlVdrdgqqvGdqN8dng4WjHcBcY+EUCejo72Asa2IRIgQhjJQ1Dsj2qrmQg80iq"
    "zU8AAAh+1MQHwA/4iQhXkq8tijAECBaIyzMYHLCBlCMXHAB+RuNYpqiYchgTkErTYfcFEM"
    "YqosV3cKWg3i6VqJeP1umImgK46gwVbqb+BPsRlva5e9LaiAVuBuqQJpJfytKLDXymarTO"
    "9AeCcTPJQJ0DCNCn4RlD9HeyMHELSzIEEc+jW93v7FMn+riss80IFypcTzSpAvRhNXTKQo"
    "sW0J940jyqT7BnBh8aec1ohQ35vle1gJ6xBVbE+0+VnHtxi3q5Zul/ENzG6vpszyrZX6MU"
    "KXRrc2m0e3Lf4KFEpNvLG3BJbCP3uEQ9GYLIdsjqLQJ7MlbXeSJF7mlOW/haJkUHAl45TU"
    "SXPsSi5o11FIKRxj8B1oCDfmaKBuPu6UEPBxJ1fA0JUWsIi8HJoh4MJTk2Mmc2qyzgnVLv"
    "ZFjDvWmc5Jng2C+1s7Op3Nfv6Nb9CiVDORTDdq/DY0lY8652WyyJ3z/Cwy9NXGcb5hvjNw"
    "LJx3WHWqv9BppgnKknnMW0pQkk3mF2FBdcohn4jTnT6Uk6Qz2ckBkxqu8ALkNaNQwtpHNw"
    "Uka62sjN++eb+9z2ytE2NCerNj9+U7drX3faX5jDO0i8uOSXt8PfU485ZZbUVV2nZ3LclQ"
    "0oTfh/tCUsbUscMtIsKsgiENonW0p6rvhNtFPEyH8OfABxyXn2HEKxjf5ON26bvbHbveKG"
    "yWSchVnMHI3YOwFKNdVoesS8iHO69DamK71dES754I9bOsdqq/0F6Hi5MESMtXJQzK6Cnm"
    "GAOttoGq9sX61xdBvb6pB5dHYuJMSVClbzLlowWLXdF1HugeQIFg06iHOMGeNQpAQeKy+7"
    "C9lU/H5AC9JS7xw1qBqjW3mJ+x8nX5QousvFm/3xRY2MSVP61t+ixU7D9ZP8sshV2FFglU"
    "dPcv1tfI/AILxG+y9OseqH429fvs2/4F8oh4PUQVhIUHfM0GAwQ7/F1VsNX22GQCFVsZbA"
    "B6wq5jZ2eAK7lKZgjpY0/8VAonoX5MMFmbj63IzKRen8bKYpKtKt3X1LdhjPzGjfwEz+CM"
    "NZ2kfYLF5O1fkLfHIgoaT7KgCwWFZWOWxkT8naOTNyfnx2cnkUaJWooUyaLSoOSbr+2tJp"
    "iMul4ZDmJChRqUeMipubmkikle4c11Vcfbprk8PS1jL09P8w0m9Jmzgrc91WsUFd9LB7+V"
    "Exir3vbS2DiIE0qGx3/I41NE1CqjV8AtYQlMukCYovfXn0ToOnRgEAVdeiQUDlZBl59veL"
    "gWGraiZ9IfMfaIvt59XAyRK71S0UprEvAqBzBxcn0+v/bOLLo2CUy1O7jxjQm5DNg2H2p7"
    "vgAbl4pGQ7wRQwNle3pUZlFbUOXKV/aZwGDr6rom3tIdCdZxs3ylqK/QU/IUVTk3Kf9NZD"
    "oe6WShsktkzP5yjOtRn7lc5HrUOUm8+3WY6+riNQpXF+gbDeFGDA0Ur9kXuJMquibuxhUc"
    "YpDlawQdhY5GH0gq8TKUMpQXIGbxv0bTtsizMBavui1i6kvQEG+CpXnumjncfie1R02M3m"
    "ePwSliWWYv7Co0fJOAqALTV9bQbVPV1uj0nHWpgXybJv/XkHRI37jyI+vXuPhJCF1r5T3m"
    "aJx4K8kjw0m30wy7Vnw27jTLsu2+hCspXT2d2Ctl6tN8xovYRS/imlFfGP47IsTPM7ENcx"
    "SFPoUV0Ha9gLjKsHpCRIOJqWszn4v8DxNTV4cUgM9AQ7YhvYmmS/h2lkUmflbCorBWYpLN"
    "VEvUqJbok28ZHkgBJEPRN87L6xyW8fIEVf5K3uGCl2dyQz+PV/d1IrfpZHhzqqfQi5tKmi"
    "0mhjQPen/JEe81c9c2nBhiz1TPfYgYjP+w3H8wabcqN2OMHT3phvQNDCuOOkXWKi5F+6ag"
    "FO2bhbyb85+sKuFFp8IoDuMzaEbOCaGPcOf0TCvZGXE0cGKvXyfXG5Xc1NRQIhXEtePpkM"
    "XE0hqx9JBRoj3JE0wVbVJs5gTfatT34/8B9HG5Dg=="
)
