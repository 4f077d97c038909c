-- Inner, outer, cross and self joins; USING and NATURAL; joins in subqueries.
create table a(id integer primary key, v text);
create table b(id integer primary key, a_id int, w text);
insert into a values (1, 'one'), (2, 'two'), (3, 'three'), (4, NULL);
insert into b values (10, 1, 'x'), (11, 1, 'y'), (12, 3, 'z'), (13, 9, 'orphan'), (14, NULL, 'nil');
select a.id, a.v, b.w from a join b on b.a_id = a.id order by a.id, b.w;
select a.id, b.w from a left join b on b.a_id = a.id order by a.id, b.w;
select a.id, b.id, b.w from a right join b on b.a_id = a.id order by b.id;
select a.id, b.id from a full outer join b on b.a_id = a.id order by coalesce(a.id, 100), b.id;
select count(*) from a cross join b;
select x.id, y.id from a x join a y on y.id = x.id + 1 order by x.id;
create table c(id integer primary key, v text);
insert into c values (1, 'one'), (2, 'deux');
select id, v from a natural join c order by id;
select id, a.v, c.v from a join c using (id) order by id;
select v, (select count(*) from b where b.a_id = a.id) as n from a order by n desc, v;
select id from a where exists (select 1 from b where b.a_id = a.id) order by id;
select id from a where id not in (select a_id from b where a_id is not null) order by id;
select a.id, group_concat(b.w, '+') from a left join b on a.id = b.a_id group by a.id order by a.id;
