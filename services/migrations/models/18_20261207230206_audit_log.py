# ruff: noqa: N999 (aerich names migration files "{number}_{timestamp}_{name}.py")
"""imgate migration 18_20261207230206_audit_log.

Written by ``python -m services.migrations.make``: aerich's SQL for each dialect; the runner
(services/migrations/runner.py) applies it in one transaction with the others pending.
"""

from tortoise import BaseDBAsyncClient

from services.migrations.dialect import sql_for

RUN_IN_TRANSACTION = True

UPGRADE = {
    "sqlite": r"""
        CREATE TABLE IF NOT EXISTS "audit_log" (
        "id" INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
        "ts" BIGINT NOT NULL,
        "actor" VARCHAR(80) NOT NULL,
        "action" VARCHAR(64) NOT NULL,
        "target" VARCHAR(200) NOT NULL,
        "detail" TEXT NOT NULL,
        "source" VARCHAR(64) NOT NULL,
        "status" INT
        );
        CREATE INDEX IF NOT EXISTS "idx_audit_log_ts_47137a" ON "audit_log" ("ts");
        CREATE INDEX IF NOT EXISTS "idx_audit_log_action_286eba" ON "audit_log" ("action");
    """,
    "postgres": r"""
        CREATE TABLE IF NOT EXISTS "audit_log" (
        "id" BIGSERIAL NOT NULL PRIMARY KEY,
        "ts" BIGINT NOT NULL,
        "actor" VARCHAR(80) NOT NULL,
        "action" VARCHAR(64) NOT NULL,
        "target" VARCHAR(200) NOT NULL,
        "detail" TEXT NOT NULL,
        "source" VARCHAR(64) NOT NULL,
        "status" INT
        );
        CREATE INDEX IF NOT EXISTS "idx_audit_log_ts_47137a" ON "audit_log" ("ts");
        CREATE INDEX IF NOT EXISTS "idx_audit_log_action_286eba" ON "audit_log" ("action");
    """,
}

DOWNGRADE = {
    "sqlite": r"""
        DROP TABLE IF EXISTS "audit_log";
    """,
    "postgres": r"""
        DROP TABLE IF EXISTS "audit_log";
    """,
}


async def upgrade(db: BaseDBAsyncClient) -> str:
    return sql_for(UPGRADE, db)


async def downgrade(db: BaseDBAsyncClient) -> str:
    return sql_for(DOWNGRADE, db)


MODELS_STATE = (
    "eJztXW1z27ay/isYfYl9RnFtxXZ83S/Hdpw2bWJnEue2M/UZiSIhiTUFqARkRyc3//1iQf"
    "BNIilCFiWKwZfEAnZBcgnuGx4svrXG1MEeO7jAvmuPWufoW4tYYyz+mOtpo5Y1mcTt0MCt"
    "vidJrZimz7hv2Vy0DiyPYdHkYGb77oS7lIhWMvU8aKS2IHTJMG6aEvefKe5yOsR8hH3R8d"
    "d/RLNLHPwVs/Dn5KE7cLHnpG7VdeDasr3LZxPZ9o7wt5IQrtbv2tSbjklMPJnxESURtUs4"
    "tA4xwb7FMQzP/SncPtydes7wiYI7jUmCW0zwOHhgTT2eeNx+N25rdbs3t3fdz9d33W5LQ0"
    "A2JSBccatMPv0QbuFl5+j49fHZq9PjM0EibzNqef09uHQsmIBRiufmrvVd9lvcCiikjGOh"
    "PmKfwS0tSPZqZPnZok2wzMlX3Pi8fENpFgk4bIglHM+qTYh4bH3tepgMOXwanZOTAoH+78"
    "Wnq18vPu0Jqn24JBWfQfB13KiuTtAHUo+lDB+VhoQVeQOle3R4WEK6gipXurIvLV1xRY6D"
    "Tzst4d8+395kSzjBMidlx7U5+j/kuWxBV+yAtAuEC8KAkceM/eMlZbr34eLPeXFfvb+9lM"
    "KhjA99OYoc4FKIHhT04CGhTaChb9kPT5bvdBd6aIfm0S52jTvj+RaLWEMpSHhieD5lst70"
    "35EBzTJmqqfQmLnjoXir3THmVimL1vodz356tLwpFgQ2Z8jq0ylHwoYh0K19i2Hkcoa9Ad"
    "qDRmaP8NhCSlfuH7TmXt86xnuGLX3AMx2FpMjXo5C2a09T6uj0uIQ2Oj3OVUbQtcS+wivW"
    "sq4hQwO1/9psa01U0MWUj64fwY5kudRRZ7FXLci6GOhYOUV0MZlg4rykxJshjw4RHSAfP1"
    "LbAgKhR4iDHJfB8KwteiwH9WdIXMCfob5PH7CPOEUPrv0gbNyjUCyYgUZhixqqygutOQy4"
    "dIc/SiTwP53Oq1evO4evTs9Ojl+/Pjk7jEKCxa6i2ODy3S8QHqQ+tOXxwjRL/PnabJop/S"
    "bosnWZjli0Dn50bS1bEXOsJGA1e+sp31edEvJ91cmVL3Sl5fsgnkvL6VH0DZy8R6dlorDT"
    "/CDsdF64gfUqr5UD+uVaeRdEuzHFXBO3541UO3fCxJMsxyfZXej6BOpLOAGCsqzzQ5Bl28"
    "KTQJILDaiPKBExkxwKXBT4NWXY/xlJx0XEUOjzrxcvOyenyGWIcepjJ8PXWd+4xrWp8Re0"
    "O67N7gfFW/RsamciKnZtJp7Fhcoa64g4ybM5IbdaOypiaRe6I4uNdISc5jL5s6WqwvYxiK"
    "JrZaTzi0xhms/4lZpWMX4B+OvE9THTfgFpvpVewPJ4tKlOSSx+yLA9rDD/03wVif9HmP7E"
    "pg7cloaST/Js0JL+zYJF+OrV/FkJLX+Wq+TP5nW8ZzHeFbGU/iyf5zTzfAfTB1+YjIoX8g"
    "ayvV2UMID4u1yioBIA0jYDxAY6ffmRuPxfQ9IhfePCmKNOGdUrqPIztZ0F9asW7bJyTZR6"
    "2CI5IXmCbU7QfcFXlaSjls2iZS5vb9/DyBFa5vLdnE69+fLh8loIX4peELk8x6UwIc2Pa+"
    "uuKAHIjqUEtWDzUv2Fts9OUJZMlt8SjJJs56jXc86/Wd/Pv/W/93po7+j8aB9RXzQPz78N"
    "XUc0Hogf0sti+B9B4jIJSRI/xEhTwrG/mDuv7jJrTqXnG5CGWuqj41Joy+MCtOXx4TJjbZ"
    "ZVK42TxDexQoykuDZnNA533mIsSH7Mhl09NTLH1jxQRqcMbqCTjxvoLOAGpMh0wQMJJjPD"
    "V5vhxind8gswMW6VMS59IkEyqax4I4bmKe31L9KNMYFb6lqepyPjObbmSXrN/l9CXl0f25"
    "pbnLK5n7XbqWbC38RmpxTKwtXaJ6nIzTRfMs05z9Ai+cBRnqU8dnnl51l7ezXyXEnFMu6r"
    "lZQ5z08xvv39E/aipNScrFXq6oMcZAf9ve/hlApb1cz4XmUiUEkrIwUYyzE/+Zd4YSUwsh"
    "Kn+oIhxTVyJ3Kzjtyiw7h4UcglEs+azNplYGJXHycjcfeXzGDKThEd/8dAYusTlBhI7OZd"
    "aPiI9HN7SS6T+Vgt8P6bugSvIPs0n5H+iplVPFglp53gapDnt2lsIfW0Uk4h/QZTTuPIGd"
    "q5MGY85dqYiojHACo0ABUisCbaoo6ZjKx1wCvCaddcBUuwNHCNd21r6guRe1roixJ/S33s"
    "DsnveCbl/k7cpEUyN0nlgEt2TO55cbpo9q2nKFZMzjchA/HkOJjMVxefry7eXLe+bwf68y"
    "HIv7YyQ36yHPCj8relg/7AdCLFhmU1Dkv8ZEzcX1Z0X8xwT+7J5QyJkK4N2B2LyUifDtC/"
    "Lc97wc4lYMenTwz1eilsUq8XYHgY8ABRcJ0XDE0JxC/3JHwytNfrBfgfq08fZb2jILkwtv"
    "wH7O8foD98l3NMIM8QjCTvTQwlpEGYEIgYph1syB1QH0aWBAw9uXwUPhn7WYw6Fhdwgub0"
    "SD62xQPlZy1UTBt+kuCEzicv/lrsNbmM2uUyspVqsRkzNqzYhiU9Be2gbuORdEOmeF3Tcz"
    "u/xF0TzPCHwDZlOw5B1xLHITCC5R0HSd9WRSyEObUxmgjPIJXWF2Z+DxragNLdB5tNHGhj"
    "WEwAv41s15GtPkbBHDnPdDmqudQ9AaM+cH3G0dB9FA7A0Jq8HPhYeCy+4BE30FYIYzGwg1"
    "wHjycUKoAiGDS3JtmcZW+jv1rBTUiXIGMd41srfsnJLbFAJn76qgZaOAdiz+BrN3xt3fRO"
    "2vAzbckRxMuEH+iPX68/XaOYEr37jMRnhW6+vH8fOLwGFV01iNG4GsbV+GFcjVjtlZ3UMU"
    "cDp3UFhS80k2zGlystWikdDdmG9A0UbgWF/4RTsijcO9GaI1xF3wRYXIEs767/vEul4BcA"
    "iOOZ6nl/e/NLSD6PSpzbuWsF1crLQkBDegP6XB30mUzDakJvszaoGNlryN4UFd149aGJl3"
    "EwQP5MjxjMNF99mkshdjnV8VGSPBWZ0t2P0BNlnRx3ld1uKTYDPFpVrQxcD3c1jxxJ8jRu"
    "glcQ44ym476ujFNMRshLhTzx8aOLn3QMZILFmMjVTeSA+rCwkoX6ypd9islI/xl++AhgGX"
    "qaJeRoQpxftXfCtRPa3IChn+mT1LrObUPlX68F9reuvLe8RXbZ3S6x0N4FV7X8+RXTiUct"
    "RyLtfHF74Zo48vEA+3D+BNpzORpbMzSinoMYnKhlecji3LJHkFliP8cwPXUyRWvuRVd1nX"
    "sSd8PuQAD/hY56r/dTrxd5lL0ewPdGVF7AoU8EbqYtV/KfRnJ9XQweYO+Qhy1YsheN90Td"
    "NUAFxW1iYmNHHS4muhlWmMJZ1ISCL5OhPYZ9ODOA/RQupP+k7D87mMyefWCiwe5tE7sXfm"
    "l6a2RprubtSly/I7LNY0HrJNlG4ck+upkg9I/uEgD6xC0PPg921ySthbV0d/lSHoCgL2p1"
    "uC2h0Q/Q7ZMCrScA3UjRt2PwedAuTF1k+M6RdU+U7ZkSGC8EmAeNLxgSBiuJMT9AF8JUii"
    "gJyla6Y5ezA5gvwNrrLQDY2vfkSQHXp4CBUHYqJhAX8Kj9UNImxSA0MVUNuryeFspAvqqF"
    "fNXHA2ggktEg67aYiAjMYLev5XmlmBqoQypYIDFYgh8mwfPZHmFn6mHnMyZpJymToNALZi"
    "FpV+4UKOsQAzHkWPo43Osgz0vHcBS6/AWupMWhPPqiixtdM8pczLnOaxwdnGxdT7qPbSp+"
    "nmdsynCZ2pOBhDML6Zp7InzrXi+8eq8XJIFgRHW/M2CygmdSGzTF/duw8ZRRuFx0vmqwX+"
    "RpRCFXdU8Uv/DeOewZkSWper1zBMfWyx0fLPgD7dme5Y7DHa7RZScWY/uSirfFm3Q9yDXZ"
    "sKfa8/IPc122BUT0w43IicLn94ykusw2je1u0zCYdoNp31nRmniz0nhTd1nQ1EN/ZhgkPA"
    "rhz2nhOxIsz0J31O0FbBreoWr66034BJOZ9atvqwv9wdIeSMiwwaJsyp9ubUabr32H0tZS"
    "h3XDeVSNsfZ9muFN5+vviMFg81ZX3g4lWBvElGAyCCaDaq9tlGNQ7c2GJtwFMOGMDO1dBC"
    "DOT80GIOPSKdmA/AULj5hkbVnSzqdPcgXfp5RHSU6Zh7Q4QNMYD8hgw1VWLnYdw2YjHdTz"
    "LQU7/IxCuIEcH1v2KBi3HeAPguo4GQCEdox7ENTpsnqQ3IVmF3K24QGdcPAaAuwxGonACx"
    "KyU35P9hSdrMhDplDtT3QdHRwENyRooBwPpFrVoZ//EiMGw3HMuJIBuhMtwSNL0y8hfkze"
    "OwsqDbYRwU8RQ1Dupx1dQoofsr0WEd+8+EMbXhEeK5efmIWXqelHJlhMilY7RWvSXNWmue"
    "Ts1D+GIMFlgv+VHUilNjVlHzMZ0a8seqnqVzjctbErFBWd7Lojpxc3c37vxLG6jRB9rcKp"
    "T4Uh1aeSYVVXK7aKanwn6neHp4MF451D3CMh1MnoaC9gbCsiESKEoQwU9c6Itqq50D2JIi"
    "s1PADAYTsTEB/APyJkob6KPPYIAFAgGmN0jOEyQoZQTBzwAblbjaJa4mFIYA5Bq80HXBSD"
    "mCrL1Z2CVoN4ulYiXr8bZiLoiiNosJX6G/hTbMbb2mVvCyqgFbhbqkBaCX8rCuy1stkq0z"
    "sQ3snEGsoEaJhGBb8Iyp+jvZELCNpZkCAO/Zpeb/98mb9VxWXuyUC5UuJ5JcjXQhNPTKQo"
    "sW0L940hQqX7BnBh8aec1ggT7s/yPayEdYgqtifaeNbxLcbtqqXbZXwDs9urKbN8a6V+jN"
    "Cl0a3N5tFti78ChVITb+wNhqXwjz5mUDQmyyGboyj0yRxJ250kiZc5ZflvoSgZFFzJOCV1"
    "0hy7kgvadRRSCscYfAcawo05GqibX3VKCPhVJ1fA0JUWsIi8XJIh4MJTk2Mmc2qyzgnVns"
    "VFjDvWmc5Jng2C+1s7Op3Nfv6Nb9AiRDORTDZq/DY0lY86Z2WyyJ2z/Cwy9NXGcb6h3B24"
    "tpV3WHWqv9BpJgnKknnMW4JRkk3mF2FBdcogn2ilOzmUkyQz2ckAkxqu8ALkNaNQwtpHNw"
    "Uka62sjN++eb+9Tx2tE2NCerNj9/k7drX3faX5jDO0i8uOSXt8NfUZ9ZdZbUVV2nZ3bclQ"
    "0oTfhftCUsbUdcItIsKsgiENonW0p6rvhNtFfIsM4c8BBxwXzzDiFYxv8nG79N3tjl1vFD"
    "bLJOQqzmDk7kFYitEuq0PWJeTDndchNbHd6miJ60dMeJbVTvUX2utwcRIDafmqhEEZPcUc"
    "Y6DVNlDVvlj/+jyo1zf14fJITJwpDqr0TaZstGCxK7rOPdkDKBBsGvURw5ZvjwJQkLjsPm"
    "xvZdMxPkBvsId5WCtQteYW8zNWvi5faJGVN+v3mwILm7jyh7VNH4WK/Y32s8xS2FVokUBF"
    "d/+mfY3ML7BA/CZLv+6B6qdT3qdf98+Rj8XrwaogLDzgSzoYINjh76mCrY5PJxOo2EphA9"
    "Cj5blOdga4kqtkhpDc8sVPpXAS6scEk7X52IrMTOr1aawsJtmq0n1NfRvGyG/cyE+sGZyx"
    "ppO0T7CYvP0z8vaWiILGkyzoQkFh2ZilMRF/5+j49fHZq9PjSKNELUWKZFFpEPyVa3urCS"
    "ajrleGg5hQoQYlHnJqbi6pYpJXeHNd1fG2aS5PTsrYy5OTfIMJfeas4G1P9RpFxXfSwW/l"
    "BMaqt700Ng7ihJLh8R/y+BQRtcroFXBLlgQmnSOLoLdXH0ToOnRhEAVdesAEDlZBFx9vWL"
    "gWGraiJ9wfUfqAvnx6vxgiV3qlopXWJOBVDmDi5Pp8fu2dWXRtEphqd3DjGxNyGbBtPtT2"
    "bAE2LhWNhngjhgbK9uSozKK2oMqVr+wzgcHW1XVNvKVPOFjHzfKVor5CT8lXVOXcpPw3ke"
    "l4pJOFyi7hMf3bNa5HfeZyketR5yTx7tdhrquL1yhcXaBvNIQbMTRQvGZf4E6q6Jq4G5dw"
    "iEGWrxF0FDoafSCpxMtQylBeAJvF/xpN2yLPwli86raIqS9BQ7wJlua5a+Zw+53UHjUxeh"
    "99CqeIZZm9sKvQ8E0CogpMX1lDt01VW6PTc9alBvJtmvxfQ9IhfePKj6xf41qPQuhaK+8x"
    "R+PEW0keGU66nWbYteKzcadZlm33JVxJ6erpxFkpU5/mM17ELnoRV5RwYfg/YSF+loltmK"
    "Mo9CnsgLbrB8RVhtUTLBpMTF2b+Vzkf5iYujqkAHwGGrIN6U00XcK3s2084VkJi8JaiUk2"
    "Uy1Ro1oix18zPJACSIaib5yX1zks4+UJqvyVvMMFL8/khn4cr+7LRG7TyfDmVE+hFzeVNF"
    "tMDGke9P6cI95r5q5tODFEn4ie+xAxGP9huf9g0m5VbsYYu3rSDekbGFYcdYqsVVyK9nVB"
    "KdrXC3k3979ZVcKLToVRHMZn0IycE0IfWZ2TU61kZ8TRwIm9fp1cb1RyU1NDiVQQ046nQx"
    "YTS2vE0kNKsPYkTzBVtEmxmRO8JlHfxdRx+TUcjNjKiPwSve2i6M8Cuq5Hh9uL/0y2fqvl"
    "b2qVKGqq/JNpZq63dz9iaKDHd1Ym83mWn/g8W8h7xruNNOSrOEyWowTmMNr3XjpvH3E0L9"
    "NRRebewdxyvUUJ3+GvOSo55tighL99r0rGBSK9u/7zLuUyL5RnGs9Uz/vbm19C8vmaTXNR"
    "OJ36eiWvY47GTen1a4w8RFd+YikP0LXLtVOeVftqqxHH9/8H5V2iIQ=="
)
