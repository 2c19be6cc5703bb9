import polars as pl


def model(dbt, session):
    """polars, from a source: one row per customer with orders."""
    orders = dbt.source("files", "orders").pl()
    return (
        orders.group_by("customer_id")
        .agg(
            pl.len().alias("order_count"),
            pl.col("amount").sum().cast(pl.Float64).alias("total_amount"),
            pl.col("ordered_on").max().alias("last_ordered_on"),
            pl.col("note").drop_nulls().first().alias("first_note"),
        )
        .sort("customer_id")
    )
