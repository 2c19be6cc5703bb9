with source as (
    select * from {{ source('raw', '${table}') }}
),

final as (
    select
${selected}
    from source
)

select * from final
