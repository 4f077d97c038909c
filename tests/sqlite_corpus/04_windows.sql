-- Window functions: ranking, running totals, frames, named windows.
create table sales(region text, month int, amount int);
insert into sales values ('n', 1, 100), ('n', 2, 150), ('n', 3, 150), ('n', 4, 90),
  ('s', 1, 200), ('s', 2, 50), ('s', 3, 75), ('s', 4, 300);
select region, month, amount,
  row_number() over w, rank() over w, dense_rank() over w
from sales window w as (partition by region order by amount desc) order by region, month;
select region, month, sum(amount) over (partition by region order by month) as running
from sales order by region, month;
select month, amount, avg(amount) over (order by month, region rows between 1 preceding and 1 following)
from sales order by month, region;
select region, month, lag(amount) over (partition by region order by month),
  lead(amount, 2, -1) over (partition by region order by month)
from sales order by region, month;
select region, first_value(month) over p, last_value(month) over p, nth_value(amount, 2) over p
from sales window p as (partition by region order by month rows between unbounded preceding and unbounded following)
order by region, month;
select month, ntile(3) over (order by month, region), percent_rank() over (order by amount),
  round(cume_dist() over (order by amount), 4)
from sales order by month, region;
select region, amount, sum(amount) over (partition by region order by amount range between 60 preceding and current row)
from sales order by region, amount;
select region, count(*) over () from sales group by region order by region;
