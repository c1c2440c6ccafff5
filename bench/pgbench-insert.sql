INSERT INTO users (nickname) VALUES ('pgbench') RETURNING id, nickname;
