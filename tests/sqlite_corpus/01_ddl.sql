-- Tables, indexes, views, triggers, ALTER TABLE, and what .tables/.schema show of them.
create table dept(id integer primary key, name text not null unique, budget real default 1000.0);
create table emp(
  id integer primary key,
  name text not null,
  dept_id integer references dept(id),
  salary integer check (salary >= 0),
  hired text
);
create index emp_by_dept on emp(dept_id, salary desc);
create unique index emp_name on emp(name);
create view rich as select name, salary from emp where salary > 5000;
create table audit(msg text);
create trigger emp_raise after update of salary on emp
  when new.salary > old.salary
begin
  insert into audit values ('raise ' || new.name || ' ' || old.salary || '->' || new.salary);
end;
.tables
.schema emp
insert into dept(name) values ('eng'), ('ops'), ('sales');
insert into emp(name, dept_id, salary, hired) values
  ('ada', 1, 9000, '2020-01-15'), ('bob', 2, 4000, '2019-06-01'),
  ('cy', 1, 7000, '2021-03-30'), ('di', 3, 3000, NULL);
update emp set salary = salary + 500 where dept_id = 1;
select * from audit order by msg;
alter table emp add column email text default 'none';
alter table dept rename to departments;
alter table emp rename column hired to start_date;
select name, email, start_date from emp order by id;
select * from rich order by salary;
select type, name, tbl_name from sqlite_schema order by type, name;
drop view rich;
drop index emp_name;
.tables
select count(*) from sqlite_schema where type = 'index';
create table if not exists audit(x);
create table audit(x);
drop table nosuch;
drop table if exists nosuch;
.schema departments
