# ruff: noqa: N999 (aerich names migration files "{number}_{timestamp}_{name}.py")
"""imgate migration 18_20261207230203_callback_outbox.

Written by ``python -m services.migrations.make``: aerich's SQL for each dialect; the runner
(services/migrations/runner.py) applies it in one transaction with the others pending.
"""

from tortoise import BaseDBAsyncClient

from services.migrations.dialect import sql_for

RUN_IN_TRANSACTION = True

UPGRADE = {
    "sqlite": r"""
        CREATE TABLE IF NOT EXISTS "callback_outbox" (
        "id" INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
        "endpoint" VARCHAR(32) NOT NULL,
        "stream" VARCHAR(96) NOT NULL,
        "event" VARCHAR(16) NOT NULL,
        "event_id" VARCHAR(26) NOT NULL,
        "body" TEXT NOT NULL,
        "created_at" BIGINT NOT NULL,
        "next_at" BIGINT NOT NULL,
        "attempts" INT NOT NULL
        ) /* One event for one endpoint (``after_*``, ``membership``, ``user``), written in the */;
        CREATE INDEX IF NOT EXISTS "idx_callback_ou_endpoin_73c04b" ON "callback_outbox" ("endpoint", "stream", "id");
    """,
    "postgres": r"""
        CREATE TABLE IF NOT EXISTS "callback_outbox" (
        "id" BIGSERIAL NOT NULL PRIMARY KEY,
        "endpoint" VARCHAR(32) NOT NULL,
        "stream" VARCHAR(96) NOT NULL,
        "event" VARCHAR(16) NOT NULL,
        "event_id" VARCHAR(26) NOT NULL,
        "body" TEXT NOT NULL,
        "created_at" BIGINT NOT NULL,
        "next_at" BIGINT NOT NULL,
        "attempts" INT NOT NULL
        );
        CREATE INDEX IF NOT EXISTS "idx_callback_ou_endpoin_73c04b" ON "callback_outbox" ("endpoint", "stream", "id");
        COMMENT ON TABLE "callback_outbox" IS 'One event for one endpoint (``after_*``, ``membership``, ``user``), written in the';
    """,
}

DOWNGRADE = {
    "sqlite": r"""
        DROP TABLE IF EXISTS "callback_outbox";
    """,
    "postgres": r"""
        DROP TABLE IF EXISTS "callback_outbox";
    """,
}


async def upgrade(db: BaseDBAsyncClient) -> str:
    return sql_for(UPGRADE, db)


async def downgrade(db: BaseDBAsyncClient) -> str:
    return sql_for(DOWNGRADE, db)


MODELS_STATE = (
    "eJztXf9zmzgW/1c0/qXJjZttnC/Npjc3l6Ttbm/bpJOmtzvT3BgZZJsNlrwIJ/X1+r+fng"
    "QYbMDIMQ6m+qWNpfcEPMT7po+evrVGzCEe3zsjvmsPW6foW4viERF/zPW0UQuPx7N2aAhw"
    "z5OkeEbT44GP7UC09rHHiWhyCLd9dxy4jIpWOvE8aGS2IHTpYNY0oe5fE9IN2IAEQ+KLji"
    "//Ec0udchXwqOf47tu3yWek7pV14Fry/ZuMB3Ltnc0eCsJ4Wq9rs28yYjOiMfTYMhoTO3S"
    "AFoHhBIfBwSGD/wJ3D7cXfic0ROpO52RqFtM8DikjydekHjcXnfW1up2L69uup/e3HS7LQ"
    "0B2YyCcMWtcvn0A7iF5539w5eHJwfHhyeCRN5m3PLyu7r0TDCKUYrn8qb1XfbjACsKKeOZ"
    "UO+Jz+GWFiR7McR+tmgTLHPyFTc+L99ImkUCjhpmEp7Nqk2IeIS/dj1CBwF8Gp2jowKB/v"
    "vs+uLXs+sdQbULl2TiM1Bfx2XY1VF9IPWZlOGj0pBwSN5A6e6/eFFCuoIqV7qyLy1dccWA"
    "qE87LeF/fbq6zJZwgmVOyo5rB+h/yHP5gq7YAmkXCBeEASOPOP/LS8p058PZH/Pivnh/dS"
    "6Fw3gw8OUocoBzIXpQ0P27hDaBhh627x6w73QXeliH5dEudo06o/kWTPFAChKeGJ4vNFmv"
    "e+9on2UZs7Cn0Ji5o4F4q90RCXApi9b6jUx/usfehAgCO+AI99gkQMKGIdCtPcwJcgNOvD"
    "7agUZuD8kIo1BX7u615l7fOsZ7hC29I1MdhRSSr0chPa09Tamj48MS2uj4MFcZQdcS+wqv"
    "WMu6RgwN1P5rs601UUFnk2D45h7sSJZLHXcWe9WCrEuAjpdTRGfjMaHOc0a9KfLYALE+8s"
    "k9szEQCD1CHeS4HIbnbdGDHdSbInEBf4p6PrsjPgoYunPtO2Hj7oViIRw0Cl/UUFVeaM1h"
    "wLk7+FEigZ87nYODl50XB8cnR4cvXx6dvIhDgsWuotjg/N0vEB6kPrTl8cIkS/z52mySKf"
    "0m6LJ1mY6ZaB1y79patmLGsZKAw9lbT/kedErI96CTK1/oSsv3TjyXltMT0jdw8u4fl4nC"
    "jvODsON54SrrVV4rK/rlWnkbRLsxxVwTt+e1VDs3wsTTLMcn2V3o+ij1JZwAQVnW+aEI27"
    "bwJJDkQn3mI0ZFzCSHAhcFfk048V8h6biIGAp9+vXseefoGLkc8YD5xMnwddY3rnFtavwF"
    "bY9rs/1B8RN6NrUzERW7NmMPB0JljXREnOTZnJBbrS0VsbQL3SHmQx0hp7lM/mypqrB9Aq"
    "Lo4ox0fpEpTPMZv1LTKs5eAPk6dn3CtV9Amm+lF7A8Hm2qUzITP2TY7laY/2m+isT/I0x/"
    "ajMHbktDySd5NmhJ/+RqEb56NX9SQsuf5Cr5k3kd72EedEUspT/L5znNPN/C9MFnLqPihb"
    "yBbG8XJQwg/i6XKKgEgPSUAWIDnb78SFz+ryHpiL5xYcx+p4zqFVT5mdrOgvoNF+2yck2M"
    "eQTTnJA8wTYn6J7gq0rScctm0TLnV1fvYeQYLXP+bk6nXn7+cP5GCF+KXhC5QY5LYUKaH9"
    "fWXTAKkB0cCmrB5qX6C22fnaAsmSy/ogQl2U6RZTmn3/D302+975aFdvZP93cR80Xz4PTb"
    "wHVE4574Ib0sTv4SJC6XkCTxQ4w0oQHxF3Pn1V1mzan0fAPSUEu9f1gKbXlYgLY8fLHMWJ"
    "tl1UrjJPFNrBAjhVybMxovtt5iLEh+xAddPTUyx9Y8UEanDG6gk48b6CzgBqTIdMEDCSYz"
    "w1eb4cYpfeIXYGLcKmNc9kBVMqmseGOG5int9S/SjQiFW+piz9OR8Rxb8yS9Zv8vIa+uT2"
    "zNLU7Z3I/a7VQz4W9is1MKZeFq7ZMMyc00XzLNgyBDi+QDR4Ms5bHNKz+P2turkedKKpZR"
    "L1xJmfP8Qsa3v10TL05Kzck6TF19kINsob/3PZpSUWs4M75XmQgMpZWRApzJMT/5l3hhJT"
    "CyEqf6jKOQa+iO5WYduUWHB+JFIZdKPGsya5eBiV19nIzE3ReZwZSdIjr+j4HE1icoMZDY"
    "zbvQ8BHp5/aSXCbzsVrg/SdzKVlB9mk+I/0VM6ukv0pOO8HVIM9v09hC5mmlnCL6DaacRr"
    "EztHVhzGgSaGMqYh4DqNAAVIjAmmqLesZkZK0DXhFOu+YqWIKlgWu8a1tTX4jc00JflPhb"
    "5hN3QH8jUyn3d+ImMc3cJJUDLtkyuefF6aLZxw9xrJicb0IG4smJmswXZ58uzl6/aX1/Gu"
    "jPB5V/bWWG/HQ54CfM35YO+pXpRCEbkdU4sPjJubi/rOi+mOGW3tLzKRIhXRuwO5jLSJ/1"
    "0T+x5z3jpxKw47MHjiwrhU2yLIXh4cADROo6zziaUIhfbmn0ZGjHshT+B/fYvax3pJILI+"
    "zfEX93D/3uu0FAKOQZ1Ejy3sRQQhqUC4GIYdpqQ26f+TCyJODowQ2G0ZPxV2LUkbiAo5rT"
    "I/nEFg+Un7UIY9rokwQndD558WWx1+QyapfLyFaqxWbM2LBiG5b0FLSDuo1H0g2Z4nVNz2"
    "39EndNMMMflG3KdhxU1xLHQRnB8o6DpG+HRSyEObUJGgvPIJXWF2Z+BxragNLdBZtNHWjj"
    "REwAv41s15GtPkFqjpxmuhzVXOqWglHvuz4P0MC9Fw7AAI+f930iPBZf8IgbaIcIYzGwg1"
    "yHjMYMKoAiGDS3JtmcZW+jLy11E9IlyFjH+NaaveTkllggEz/9sAZaNAdmnsHXbvTauumd"
    "tNFn2pIjiJcJP9Dvv765foNmlOjdJyQ+K3T5+f175fAaVHTVIEbjahhX44dxNWZqr+yknn"
    "E0cFpXUPhCM8lmfLnSopXS0ZBtRN9A4VZQ+E84JYvCvRGtOcIN6ZsAiyuQ5c2bP25SKfgF"
    "AOJoGva8v7r8JSKfRyXO7dzFqlp5WQhoRG9An6uDPpNpWE3obdYGFSN7DdmboqIbrz409j"
    "IOBsif6TGDmearT3MpxG7AdHyUJE9FpnT7I/REWSfHXWW3W4rNAI9WVSt91yNdzSNHkjyN"
    "m+AVxDjDyainK+MUkxHyUiGPfXLvkgcdA5lgMSZydRPZZz4srGShvvJln2Iy0n+EHz4EWI"
    "aeZok4mhDnV+2dBNoJ7cCAoR/pk9S6zm1D5V+vBfa3rry3vEV22d0usdDeBVe1/PkVk7HH"
    "sCORdr64vWhNHPmkT3w4fwLtuAEa4SkaMs9BHE7Uwh7CQYDtIWSW+KsZTC88maI196Krus"
    "4tnXXD7kAA/0WOumX9ZFmxR2lZAN8bMnkBhz1QuJm2XMl/GMr1dTG4wt4hj2BYsheNtzS8"
    "a4AKitsk1CZOeLiY6OYkxBRO4yakvkyOdjjx4cwA/lO0kP5TaP/53nj66AMTDXbvKbF70Z"
    "emt0aW5mrersT1OyJPeSxonSTbKDzZRzcThP7RXQJAH7vlwedqd03SWuClu8uX8gAEfVGr"
    "w20Jjb6Hrh5C0HoC0I1C+vYMfK7ahamLDd8pwrc0tD0TCuNFAHPV+IwjYbCSGPM9dCZMpY"
    "iSoGylO3IDvgfzBVgtawHA1r6lDyFwfQIYiNBOzQjEBTxm35W0STMQmpiqBl1eTwtlIF/V"
    "Qr7q4wE0EMlokHVPmIhQZrDb0/K8UkwN1CEVLJAYLMEPk+D5ZA+JM/GI84nQtJOUSVDoBf"
    "OItCt3CpR1iIEYciw9Eu11kOelEzgKXf4CVxIHUB590cWNrxlnLuZc5zWODk62rifdIzYT"
    "P08zNmW4PNyTgYQzC+maWyp8a8uKrm5ZKgkEI4b3OwUmrJ4p3KAp7t+GjaecweXi81XVfp"
    "GHIYNc1S0N+YX3HsCeEVmSyrJOERxbL3d8cPUH2rE97I6iHa7xZceY811JFbTFm3Q9yDXZ"
    "sKfa8/IPc122BUT0w43IiRLM7xlJdZltGk+7TcNg2g2mfWtFa+LNSuNN3WVBUw/9kWGQ8C"
    "iEP6eF70iwPArdUbcXsGl4R1jTX2/CJ5jMrF99W13kD5b2QCKGDRZlC/3p1ma0+dp3KD1Z"
    "6rBuOI+qMda+zzK86Xz9HTMYbN7qytthlGiDmBJMBsFkUO21jXIMqr3Z0IQbBRPOyNDexA"
    "Di/NSsAhmXTskq8mc8OmKSt2VJO589yBV8n7EgTnLKPCQOAJrGA0UGG66ycrHrGDYb6RA+"
    "31KwwysUwQ3k+ATbQzVuW+EPVHWcDABCe4Z7ENTpsnqQ3IVmF3K20QGdcPAaAuwxGorACx"
    "Kyk+CW7oR0siIPnUC1P9G1v7enbkjQQDkeSLWGh37+TYyohgsID0IZoBvRoh5Zmn4J8ePy"
    "3rmqNNhGlDzEDKrcTzu+hBQ/ZHsxFd+8+EMbXhEdK5efmIWXqelHJlhMilY7RWvSXNWmue"
    "Ts1D+GIMFlgv+VHchQbWrKfsZkRL+y6KWqX+Fw18auUFR0suuWnF7czPm9FcfqNkL0tQqn"
    "rgtDquuSYVVXK7aKa3wn6ndHp4Op8U4h7pEQ6mR0tKMY2yGRCBGiUAaKemdEW9Vc6JbGkV"
    "U4PADAYTsTEO/BPyJkYX4YeexQAKBANMbZiMBlhAyhmDjgA3K3GsW1xKOQwByCVpsPuCgG"
    "MVWWqzsFrQbxdK1EvH43zETQFUfQYCv1N/Cn2Iy3tc3eFlRAK3C3wgJpJfytOLDXymaHmd"
    "6+8E7GeCAToFEaFfwiKH+OdoYuIGinKkEc+TWWtXu6zN+q4jK3tB+6UuJ5JcgXo7EnJlKc"
    "2LaF+8YRZdJ9A7iw+FNOa0Ro4E/zPayEdYgrtifagqzjW4zbVUu3y/gGZrdXU2b5k5X6MU"
    "KXRrc2m0efWvwVKJSaeGOvCSyFf/QJh6IxWQ7ZHEWhT+ZI2u44SbzMKct/C0XJIHUl45TU"
    "SXNsSy5o21FIKRyj+g40hDvjaKBuPuiUEPBBJ1fA0JUWsIi8XJoh4MJTk2dM5tRknROqPR"
    "yIGHekM52TPBsE97e2dDqb/fwb36BFqWYimW7U+G1oKu93TspkkTsn+Vlk6KuN43zJArfv"
    "2jjvsOpUf6HTTBOUJfOYV5SgJJvML8KC6oRDPhGnOwMoJ0mnspMDJjVa4QXIa0ahhLWPbg"
    "pI1lpZGb998357jzlaJ8ZE9GbH7uN37Grv+0rzGWdoG5cdk/b4YuJz5i+z2iFVadvdtSVD"
    "SRN+E+0LSRlT14m2iAizCoZURetoJ6y+E20X8TEdwJ/9AHBcQYYRr2B8k4/bpu9ue+x6o7"
    "BZJiFXcQYjdw/CUox2WR2yLiG/2HodUhPbHR4t8eae0CDLaqf6C+11tDhJgLR8VUJVRi9k"
    "nmGgw22gYfti/etTVa9v4sPlkZg4E6Kq9I0nfLhgsSu6zi3dASgQbBr1ESfYt4cKFCQuuw"
    "vbW/lkRPbQa+KRIKoVGLbmFvMzVr4uX2iRlTfr95sCC5u48oe1TR+Fiv0X62WZpair0CKB"
    "iu7+yXoamV9ggfhNln7dAdXPJkGPfd09RT4Rr4eEBWHhAZ+zfh/BDn8vLNjq+Gw8hoqtDD"
    "YA3WPPdbIzwJVcJTOEDLAvfoYKJ6F+TDBZm4+tyMykXp/GymKSrSrd19S3YYz8xo38GE/h"
    "jDWdpH2CxeTtH5G3xyIKGo2zoAsFhWVnLI2J+Dv7hy8PTw6OD2ONErcUKZJFpUHJ10DbW0"
    "0wGXW9MhzEhAo1KPGQU3NzSRWTvMKb66qO95Tm8uiojL08Oso3mNBnzgp+6qleo6j4Rjr4"
    "rZzAOOxtL42NVZxQMjz+XR6fIqJWGb0CbglLYNIpwhS9vfggQteBC4OE0KU7QuFgFXT28Z"
    "JHa6FRK3ogvSFjd+jz9fvFELnSKxWttCYBr3IAEyfX5/Nrb82ia5PAVNuDG9+YkMuAbfOh"
    "ticLsHGpaDTEGzM0ULZH+2UWtQVVrnxlnwkMnlxd18RbuiZqHTfLV4r7Cj0lP6Qq5yblv4"
    "lMxyOdLAztEhmxP13jetRnLhe5HnVOEm9/Hea6uniNwtUpfaMh3JihgeI1+wK3UkXXxN04"
    "h0MMsnwN1VHoaPSApBIvI1SG8gLELP7XaNoWeRbG4lW3RSz8EjTEm2BpnrtmDrffSu1RE6"
    "P30WdwiliW2Yu6Cg3fWBFVYPrKGrqnVLU1Oj1nXWog36bJ/zUkHdE3rvzI+jUuvhdC11p5"
    "n3E0TryV5JHhpNtJhl0rPht3kmXZtl/ClZSunoydlTL1aT7jRWyjF3HBaCAM/zUR4ueZ2I"
    "Y5ikKfwla0XV8RVxlWj4loMDF1beZzkf9hYurqkALwGWjINqI30XQJ3862yTjISlgU1kpM"
    "splqiRrVEgPyNcMDKYBkhPSN8/I6L8p4eYIqfyXvxYKXZ3JDP45X93kst+lkeHNhT6EXN5"
    "E0T5gY0jzo/TFHvNfMXdtwYog9UD33IWYw/sNy/8Gk3arcjDFy9aQb0TcwrNjvFFmrWSna"
    "lwWlaF8u5N3c/2ZVCS86FSbkMD6DZuScEPoQd46OtZKdMUcDJ/b6dXK9UclNTQ0lUkFcO5"
    "6OWEwsrRFLDxgl2pM8wVTRJsVmTvCaRH0X2PNgpCtZ1uaaPbSy0vkLRO3CjH5I3lW1ckrF"
    "hLLajixIFxdaJ9QZM/Fi0I5lyRqs3b9ZVhtZljpomw/dsfoNOw4ta3e+VFxr7o1XcIlbmi"
    "hAh1hflqCzh1A3FrkBHFPJ/IC/Qk6yrhzQxBcOYMejIN2BGkEBesAcDVxxj2gy3t27pZYl"
    "bp/gkWWp8nbyrEw4QFPEr1CEHk7cFfcp91fKOkPqVk//PnGdf8jDM+Ex1RhwECd7EOMzcV"
    "Vx50Pi+rMbATocwMGcwudtw/NZlqtOLheXLFkD70srGk/qGnlZ+CuqY2TWWWq3zpJ8YaVR"
    "5QmeBnqQ6weWz76E8niEiKOBAv65zJ6Tn/P3nPy8sOeERFVPS0/hiKGB4t0vI979fPHuZ4"
    "tXc+NUkqeBQl7/vqns0zBuyNccO5hzGsZ2CrdAmDdv/rhJRTgL1bRG07Dn/dXlLxH5fImt"
    "bYrpf4CsVV2rb/0AojeV5NZQSe5J4/fv/wcpn78m"
)
