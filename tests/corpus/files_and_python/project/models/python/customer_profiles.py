import pandas as pd


def model(dbt, session):
    """pandas, from a ref: text (with a null and a non-ASCII name), numbers, dates and nulls."""
    customers = dbt.ref("stg_files__customers").df()
    customers["full_name"] = customers["first_name"] + " " + customers["last_name"]
    customers["email_domain"] = customers["email"].str.split("@").str[1]
    customers["name_length"] = customers["full_name"].str.len().astype("int64")
    customers["signed_up_on"] = pd.to_datetime(customers["signed_up_on"]).dt.date
    return customers[["customer_id", "full_name", "email_domain", "name_length", "signed_up_on"]]
