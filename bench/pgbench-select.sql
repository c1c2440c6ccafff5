\set id random(1, 100000)
SELECT id, nickname FROM users WHERE id = :id;
