# ruff: noqa: N999 (aerich names migration files "{number}_{timestamp}_{name}.py")
"""imgate migration 6_20261201004547_profiles.

Written by ``python -m services.migrations.make``: aerich's SQL for each dialect; the runner
(services/migrations/runner.py) applies it in one transaction with the others pending.

Profiles (issue 15): each user's display name, avatar and status text, owned by the profile service.
"""

from tortoise import BaseDBAsyncClient

from services.migrations.dialect import sql_for

RUN_IN_TRANSACTION = True

UPGRADE = {
    "sqlite": r"""
        CREATE TABLE IF NOT EXISTS "profiles" (
        "uid" VARCHAR(64) NOT NULL PRIMARY KEY,
        "name" VARCHAR(64) NOT NULL,
        "avatar" VARCHAR(512) NOT NULL,
        "status" VARCHAR(140) NOT NULL,
        "updated_at" BIGINT NOT NULL
        );
    """,
    "postgres": r"""
        CREATE TABLE IF NOT EXISTS "profiles" (
        "uid" VARCHAR(64) NOT NULL PRIMARY KEY,
        "name" VARCHAR(64) NOT NULL,
        "avatar" VARCHAR(512) NOT NULL,
        "status" VARCHAR(140) NOT NULL,
        "updated_at" BIGINT NOT NULL
        );
    """,
}

DOWNGRADE = {
    "sqlite": r"""
        DROP TABLE IF EXISTS "profiles";
    """,
    "postgres": r"""
        DROP TABLE IF EXISTS "profiles";
    """,
}


async def upgrade(db: BaseDBAsyncClient) -> str:
    return sql_for(UPGRADE, db)


async def downgrade(db: BaseDBAsyncClient) -> str:
    return sql_for(DOWNGRADE, db)


MODELS_STATE = (
    "eJztXVtz27YS/isYvdSeUXJsWb4c98l2kjZNYmcS57QzaUeGSEhCRAEMANrWpP7vBwDvEk"
    "mTiihTNJ4SA7sg9RHcbxe7AH90ZtRGDn95hhi2Jp1T8KND4AzJ/yz0dEEHum7crhoEHDpa"
    "FMYyQy4YtIRsHUGHI9lkI24x7ApMiWwlnuOoRmpJQUzGcZNH8HcPDQQdIzFBTHZ8/Uc2Y2"
    "Kje8TDP93pYISRY6duFdvq2rp9IOaubntLxBstqK42HFjU8WYkFnbnYkJJJI2JUK1jRBCD"
    "AqnhBfPU7au7C35n+Iv8O41F/FtM6NhoBD1HJH7ucBC3dQaDy6vrwefX14NBpwJAFiUKXH"
    "mrXP/6sbqFF739/nH/5OCofyJF9G1GLccP/qVjYHxFDc/ldedB90MBfQmNcQzqLWJc3dIS"
    "shcTyLKhTags4CtvfBHfEM0igMOGGOF4Vm0C4hm8HziIjIV6NXqHhwWA/u/s08XvZ592pN"
    "SuuiSVr4H/dlwGXT2/T6Eeo6xeqgoIB+ItRHd/b68EulIqF13dl0ZXXlEg/9VOI/zH56vL"
    "bIQTKgso29gS4F/gYL5kK7YA7QJwFRhq5Bnn350kpjsfzv5ahPvi/dW5BodyMWZ6FD3AuY"
    "ReGejRNGFNVMMQWtM7yOzBUg/t0TzZ5a5Zb7bYAgkcayDVL1a/L6CsV8O3ZESzyCzoKSQz"
    "PBvLpzqYIQFLMVrnHZr/5xY6HpICluAADqkngOQwoGzrEHIEsODIGYEd1citCZpBENjK3Z"
    "edhce3jvF+gkunaF7FIAXi6zFIT8unKXN01C9hjY76ucZIdT3Cr+oRV2LXUKGF1n9t3NoQ"
    "E3TmicnrW8UjWS511FnsVUuxAVJyvJwhOnNdROwXlDhz4NAxoCPA0C21oBKQdoTYwMZcDc"
    "+7sgfaYDgH8gJsDoaMThEDgoIptqaS426lYUFcWRS+bKHqvNCaw4BzPH4ukcB/e72Dg+Pe"
    "3sHRyWH/+PjwZC8KCZa7imKD87e/qfAg9aI9Hi94WfDnWzMvE/022LJ1UUcMrY1usVWJK2"
    "KNlQAOZm8z8T3olcD3oJeLr+pK4zuVv6uS0xPIt3Dy7h+VicKO8oOwo0VwffYqb5V9+cet"
    "8jZAuzHD3BC355U2O9eS4kmW45PsLnR9fPMlnQApWdb5IQBalvQkgNYCI8oAJTJm0kMpF0"
    "X95XHEfgXacZExFPj8+9mL3uERwBxwQRmyM3yd9Y1rXJsGv0Hb49psf1D8hJ5N4yiiZtfG"
    "daCQJmtWBeKkzuZA7nS2FGLNC4MJ5JMqIKe1zPrZo6bCYkhBMYAZy/lFVJjWM35lRVaMHw"
    "C6dzFDvPIDSOut9AAej0fb6pTE8KsVtukK8z+tVxP8LZ3+DQmrvnAdLSzFU7q9WxRIqbik"
    "XABVS2HGUzrOLSTD/AhF/1sB6VC+de7dfu+kzAJW7yR/BUv1LUQpfjIjKwan1EGQ5IQqCb"
    "UFoIdSry6ko5bNVhGcX129VyNHVQTnbxds6uWXD+evJfgaeimERQ7VGVfv+XLdBSWqlAEG"
    "QC1xXqq/kPushGTJRcQrgkBS7RTc3NinP+DD6Y/hw80N2Nk/3d8FlMnm8emPMbZl40v5hw"
    "O5GHD0XYpgrks15B9yJI8IxJbXFOu7zJqXGPMJpKVMvd8vVYXWL6hC6+89RtYm3RThXYas"
    "86l6iajDF6QabSS1Nkcae1vPGEvIz/h4UM2MLKi1L1ndK5NP7eXnU3tL+VQNWdWkakLJzP"
    "DVZrhxSp/4AZgYt84Yl94RfzGpLLyRQvuM9nrWayoEVIkoB82GwZLdgokJFN+8+4ScKPpZ"
    "wD6IkT7oQbbQsDyEkyxsDWbKQ50RZ4BWRqwZ45gfZSYeWIkiFV0o8gsHgdYEu7paVtfIci"
    "EfFMBEF5Qkw8OMopTVx8mIEL/qUFl3SjfsH1OT0hz2MzUpm7HV6UQbtKsHkUkt42Kv5uF9"
    "o5igFbBP6xn0Vwzh0WiVxZOElkkur5zcp06l2CaU32BsM4ucoa1bFpx5onLyLtIxmbsKmT"
    "sXE1IZ6ljJYF0lSyqd9orLrQmVFiYT1pa8WYrc06AvI/6GMoTH5B2aa9zfypuEJLNKOSeL"
    "uWW458XpspnBuyhWTM43iYH85cifzBdnny/OXr3uPDxNjvkD4hxqns8I+f2ubnHMr4VKB/"
    "2BfDfYDCIDcwsBF7F0dA5ubnZUQ1dldXdvbnREL9s4kg+ZdYGFbd3KEPDnwWnGukBdl/qb"
    "qHTzCDMuwBjfIg7G0H0xYggByqSOvIFukJGWA9sA22jmUnWSBlCD5u7tjdcelA8pn9rXjn"
    "8Tqsn62eWIZ5e/Xle6KX/dIdsAFlOO4ZtivkmyeuUAbONRb+uCr9jglJ3UsUYLp3UNWzcq"
    "eqmt9VDXD61GpwK2oXwLwa1h6zq6z0j2X8vWHHAD+TZkRAuwvH7913Uqhl06L2w2D3reX1"
    "3+FoovHiK2UGMN/fO20ljnn9MWyv/UIW3bg/nazmhLrYtJ9zwsji2Le1LHYL869uZYjI3v"
    "n3OdjKPt8md6pGCm+erTXIMoI/5KyY2ETk1Uuv0RemJfro1XqUtMqZnM3RZulfGP0/ko3z"
    "6kFptzD9yJJLolztxxk8Jr3TT6NSxCCY7wMIVGjZnQ3YIFP1NoZA6/2QjA6z+ZhRIHkwyA"
    "C7PRsZLJRlfJ/JuDhmo/aMiEjBve8kNJpe9fhPIbI79t23DSEMf5kgo8wlbuHvNUf6HTTB"
    "KSFfaYJ9WiEyVVST/YgelOQYH8GXPdydWubyXJ6B1A0JpkfDxg7aObQysbbayM3755v31I"
    "7UoLiaG8+Z7MTywkmu23z3ehK8nHFx7jNHO3XoZUae4eWFqhJIVfTxBQO+rTZIptMIFyRt"
    "iKVhNHRO/IK+NbxDDiuqKOQTJW/x0JychYZJB4DeOb9bhteu+2h9dbVUxjFuRqXsHQx5BU"
    "NR8JJbO1b+u4Oyioz/0YVqq/kK+D0vZqn8QK6+Cjuvg7hoVARO2PV+XqQfsvMvS9ky2SO7"
    "kcUJ/Jpr+45zF1eSAnjodkCxTA9fwjuxcK72u5zt9kR1XmO1BROUeQWROgZ6287K4q6efe"
    "DL0Er/TGiqDYP2g1n5xo/BtaxPLhZK9G9mmtFlLS+qsnTFz5fLnpozSxf9BhFi2FXYWMpE"
    "z04BsdVlj5VSoqflM7CPzvt1JPDOn97ilgSD4eacXvsJgA9QNf0NEIeERgR4mLLrAZdV1k"
    "d9XRoJjcQgdnfLCotqtkhpACMvlnYHAS5scEk4152YpoJvX4KmQWk2p12b62Pg1D8hsneR"
    "fOHQozUM5ftE+omHX7n1i3hzIKmrlZpQu51iWp0pqIv7ffP+6fHBz1I4sStRQZkoxjMNG9"
    "qOytJpSMuV65HMSECg04ZBoxRitt1k1rtWFv3gJdHh6W4cvDw3zCVH2NisqutYPZyQnMgt"
    "7uo7GZ76eWDM/+lEENUlGTjp5U3QzUhTGnABLw5uKDDJ3GWA0SlM5MEemqrrOPlzzMxYWt"
    "4A4NJ5ROwZdP75dDtFqvVJTpSxZc6gFMnNYkS7ctSb82FfNsT93yxkBe8+l7Ivzed1l4I4"
    "UWYnu4XyapKqVy8dV9xjF9cnPdEG/pE/LziFm+UtRX6CmxQKqG70R+XVisCngJzeg3bFyP"
    "5szlItejyYuUbdrG3SwXr1V1Xb69qQBupNBCeM2+tK000Q1xN84dak2zfA2/o9DRGCqRWr"
    "yMwBjqCyCTfG7QtC3yLAzj1bdFKXgTKsCbUGmfu1bDwYuG9J4N6X1kdIT1fS2nI4KuQuJz"
    "faEaqK8s0T2lqW3Q8djrMgP5nGY+UlmbxYW3EvRKmd9Yo3Xw1rKOrL4c6GXwWsFB2JFG6x"
    "Cu5XR3z7VXWqlP6xkvYnu8iIf/A2tONRs="
)
