-- How values print: reals, big and small numbers, printf/format, strings, blobs; output modes.
select 1.0, 0.1 + 0.2, 1e15, 1e16, 123456789012345678, 1.5e-7, -0.0, 100.0 / 3;
select 3.14159265358979, 2.0 * 0.5, 1e308 * 10, -1e308 * 10, 0.000001, 1/3.0;
select printf('%5d|%-5d|%05d|%x|%X|%o', 42, 42, 42, 255, 255, 8);
select printf('%.3f|%10.2f|%e|%g|%g', 3.14159, 2.5, 12345.678, 0.0001, 1e20);
select printf('%s|%10s|%-10s|%q|%Q|%w', 'a', 'right', 'left', 'it''s', 'it''s', 'x"y');
select format('%c%c%%', 'a', 'b'), printf('%,d', 1234567), printf('%!.20g', 0.1);
select round(2.5), round(-2.5), round(1.005, 2), round(123.456, -1), trunc(-2.7), ceil(1.2), floor(-1.2);
select upper('mixed Case'), lower('ÀÉÎ'), length('héllo'), octet_length('héllo'), hex('é');
select substr('hello world', 7), substr('hello', -3, 2), replace('aaa', 'a', 'bb'), trim('  x  ') || '|';
select instr('banana', 'nan'), 'abc' like 'A%', 'abc' glob 'A*', unicode('€'), char(72, 105);
select quote(x'deadbeef'), quote('a''b'), quote(1.5), zeroblob(3) = x'000000', hex(zeroblob(2));
select 'line1
line2', 'tab	here', '';
create table f(name text, qty int, price real, note text);
insert into f values ('apple', 3, 0.5, 'crisp'), ('pear, bosc', 10, 1.25, NULL), ('say "hi"', 0, 1e10, '');
.headers on
select * from f;
.mode csv
select * from f;
.mode column
select * from f;
select name as n, qty * price as total from f order by total;
.mode line
select * from f where qty > 0;
.mode list
.headers off
.nullvalue NULL
select * from f;
.separator ;
select name, qty from f;
