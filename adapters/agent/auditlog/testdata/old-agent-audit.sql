-- An agent audit log as the agent wrote it before it had its own store (with
-- broker/audit.Open, WithSigners, WithCheckpointEvery(3, time.Hour)), dumped
-- with sqlite3's .dump: five fragment entries (one denial, one with an
-- obligation), checkpoints at entries 3 and 5 signed by old-agent.key.pub.
BEGIN TRANSACTION;
CREATE TABLE audit_archives (
			first_seq  INTEGER PRIMARY KEY,
			last_seq   INTEGER NOT NULL,
			file       TEXT NOT NULL,
			prev_hash  TEXT NOT NULL,
			last_hash  TEXT NOT NULL,
			sha256     TEXT NOT NULL,
			entries    INTEGER NOT NULL,
			created_us INTEGER NOT NULL
		);
CREATE TABLE audit_checkpoints (
			seq        INTEGER PRIMARY KEY,
			hash       TEXT NOT NULL,
			time       TEXT NOT NULL,
			signatures TEXT NOT NULL
		);
INSERT INTO "audit_checkpoints" VALUES(3,'cad1f51c7a53dc6e712f8feed22946206293dd18df61a86d6c1c34f374efd5d2','2026-12-03T12:56:59.881080685Z','[{"algorithm":"ed25519","key_id":"sha256:55b9535885dfb4002d8f8e99599197aad6aff742766900cb1c5603425b5424e1","signature":"kpFyO8riBXAJ3HKKegI5SwrNOEHDPpeAjSnzTPQmibrvRBa7zRaTiQR9Gjn8RV/6OpjTb3h7Lrtxuz18uCTtBQ=="}]');
INSERT INTO "audit_checkpoints" VALUES(5,'efc24c233a53cae36ee444a66df070fdaa2aaca2c173cefebf206fff446c3f63','2026-12-03T12:56:59.888910664Z','[{"algorithm":"ed25519","key_id":"sha256:55b9535885dfb4002d8f8e99599197aad6aff742766900cb1c5603425b5424e1","signature":"X+MBpxXarslL6O9uoo+5h4UCMol4Pnutg58lFlKoQA1Nn7jXlJQCvgHRcJ32b2YBUZEVL9LnC4W0rDXsAMfkDA=="}]');
CREATE TABLE audit_entries (
			seq        INTEGER PRIMARY KEY,
			time_us    INTEGER NOT NULL,
			kind       TEXT NOT NULL,
			query_id   TEXT NOT NULL,
			principal  TEXT NOT NULL,
			department TEXT NOT NULL,
			purpose    TEXT NOT NULL,
			decision   TEXT NOT NULL,
			prev_hash  TEXT NOT NULL,
			hash       TEXT NOT NULL,
			body       TEXT NOT NULL
		);
INSERT INTO "audit_entries" VALUES(1,1741064768123456,'fragment','q-old-1','bob','market','enterprise-credit','allow','0000000000000000000000000000000000000000000000000000000000000000','1ff72bea51af756140d43687c45195cf4084d2d9191a76622063ff6086591c6a','{"seq":1,"time":"2025-03-04T05:06:08.123456Z","kind":"fragment","query_id":"q-old-1","principal":"bob","role":"analyst","department":"market","purpose":"enterprise-credit","datasets":["police.household"],"decision":"allow","plan":"SELECT \"name\" FROM \"household\" WHERE \"district\" = ?","rows":1,"duration_ms":1.25,"plan_hash":"sha256:plan","fragments":[{"department":"police","dataset":"police.household","sql_hash":"sha256:plan","rows":1,"bytes":100,"digest":"digest-1"}],"bytes":100,"prev_hash":"0000000000000000000000000000000000000000000000000000000000000000","hash":""}');
INSERT INTO "audit_entries" VALUES(2,1741064769123456,'fragment','q-old-2','bob','market','enterprise-credit','allow','1ff72bea51af756140d43687c45195cf4084d2d9191a76622063ff6086591c6a','6f9844edb86d7433a68ff33a56cc0d71a52b73e75520218082b97ddfc405a200','{"seq":2,"time":"2025-03-04T05:06:09.123456Z","kind":"fragment","query_id":"q-old-2","principal":"bob","role":"analyst","department":"market","purpose":"enterprise-credit","datasets":["police.household"],"decision":"allow","plan":"SELECT \"name\" FROM \"household\" WHERE \"district\" = ?","rows":2,"duration_ms":1.25,"plan_hash":"sha256:plan","fragments":[{"department":"police","dataset":"police.household","sql_hash":"sha256:plan","rows":2,"bytes":200,"digest":"digest-2"}],"bytes":200,"prev_hash":"1ff72bea51af756140d43687c45195cf4084d2d9191a76622063ff6086591c6a","hash":""}');
INSERT INTO "audit_entries" VALUES(3,1741064770123456,'fragment','q-old-3','bob','market','enterprise-credit','deny','6f9844edb86d7433a68ff33a56cc0d71a52b73e75520218082b97ddfc405a200','cad1f51c7a53dc6e712f8feed22946206293dd18df61a86d6c1c34f374efd5d2','{"seq":3,"time":"2025-03-04T05:06:10.123456Z","kind":"fragment","query_id":"q-old-3","principal":"bob","role":"analyst","department":"market","purpose":"enterprise-credit","datasets":["police.household"],"decision":"deny","reasons":["join_key"],"plan":"SELECT \"name\" FROM \"household\" WHERE \"district\" = ?","rows":0,"duration_ms":1.25,"error":"column id_card is a join key","plan_hash":"sha256:plan","prev_hash":"6f9844edb86d7433a68ff33a56cc0d71a52b73e75520218082b97ddfc405a200","hash":""}');
INSERT INTO "audit_entries" VALUES(4,1741064771123456,'fragment','q-old-4','bob','market','enterprise-credit','allow','cad1f51c7a53dc6e712f8feed22946206293dd18df61a86d6c1c34f374efd5d2','e233a5ee072aea410b1d6cf7e61e888baeeaefbee5a10cbbf6e5cfae6cde5812','{"seq":4,"time":"2025-03-04T05:06:11.123456Z","kind":"fragment","query_id":"q-old-4","principal":"bob","role":"analyst","department":"market","purpose":"enterprise-credit","datasets":["police.household"],"decision":"allow","obligations":{"suppressed_groups":2},"plan":"SELECT \"name\" FROM \"household\" WHERE \"district\" = ?","rows":4,"duration_ms":1.25,"plan_hash":"sha256:plan","fragments":[{"department":"police","dataset":"police.household","sql_hash":"sha256:plan","rows":4,"bytes":400,"digest":"digest-4"}],"bytes":400,"prev_hash":"cad1f51c7a53dc6e712f8feed22946206293dd18df61a86d6c1c34f374efd5d2","hash":""}');
INSERT INTO "audit_entries" VALUES(5,1741064772123456,'fragment','q-old-5','bob','market','enterprise-credit','allow','e233a5ee072aea410b1d6cf7e61e888baeeaefbee5a10cbbf6e5cfae6cde5812','efc24c233a53cae36ee444a66df070fdaa2aaca2c173cefebf206fff446c3f63','{"seq":5,"time":"2025-03-04T05:06:12.123456Z","kind":"fragment","query_id":"q-old-5","principal":"bob","role":"analyst","department":"market","purpose":"enterprise-credit","datasets":["police.household"],"decision":"allow","plan":"SELECT \"name\" FROM \"household\" WHERE \"district\" = ?","rows":5,"duration_ms":1.25,"plan_hash":"sha256:plan","fragments":[{"department":"police","dataset":"police.household","sql_hash":"sha256:plan","rows":5,"bytes":500,"digest":"digest-5"}],"bytes":500,"prev_hash":"e233a5ee072aea410b1d6cf7e61e888baeeaefbee5a10cbbf6e5cfae6cde5812","hash":""}');
CREATE TABLE audit_entry_datasets (
				seq     INTEGER NOT NULL,
				dataset TEXT NOT NULL,
				PRIMARY KEY (seq, dataset)
			);
INSERT INTO "audit_entry_datasets" VALUES(1,'police.household');
INSERT INTO "audit_entry_datasets" VALUES(2,'police.household');
INSERT INTO "audit_entry_datasets" VALUES(3,'police.household');
INSERT INTO "audit_entry_datasets" VALUES(4,'police.household');
INSERT INTO "audit_entry_datasets" VALUES(5,'police.household');
CREATE TABLE audit_head (
			id   INTEGER PRIMARY KEY CHECK (id = 1),
			seq  INTEGER NOT NULL,
			hash TEXT NOT NULL
		);
INSERT INTO "audit_head" VALUES(1,5,'efc24c233a53cae36ee444a66df070fdaa2aaca2c173cefebf206fff446c3f63');
CREATE TABLE audit_meta (
			key   TEXT PRIMARY KEY,
			value TEXT NOT NULL
		);
INSERT INTO "audit_meta" VALUES('schema_version','3');
CREATE TABLE audit_policy_revisions (
			rev           TEXT PRIMARY KEY,
			first_seen_us INTEGER NOT NULL,
			modules       TEXT NOT NULL,
			data          BLOB
		);
CREATE TABLE schema_migrations (
	store      TEXT NOT NULL,
	version    BIGINT NOT NULL,
	applied_at TEXT NOT NULL,
	PRIMARY KEY (store, version)
);
INSERT INTO "schema_migrations" VALUES('audit',1,'2026-12-03T12:56:59.872163389Z');
INSERT INTO "schema_migrations" VALUES('audit',2,'2026-12-03T12:56:59.872163389Z');
INSERT INTO "schema_migrations" VALUES('audit',3,'2026-12-03T12:56:59.872163389Z');
CREATE INDEX audit_entries_time ON audit_entries(time_us);
CREATE INDEX audit_entries_principal ON audit_entries(principal);
CREATE INDEX audit_entries_purpose ON audit_entries(purpose);
CREATE INDEX audit_entries_query_id ON audit_entries(query_id);
CREATE INDEX audit_entry_datasets_dataset ON audit_entry_datasets(dataset, seq);
CREATE TRIGGER audit_entries_no_update BEFORE UPDATE ON audit_entries
	BEGIN SELECT RAISE(ABORT, 'audit_entries is append-only'); END;
CREATE TRIGGER audit_entries_no_delete BEFORE DELETE ON audit_entries
	BEGIN SELECT RAISE(ABORT, 'audit_entries is append-only'); END;
CREATE TRIGGER audit_checkpoints_no_update BEFORE UPDATE ON audit_checkpoints
	BEGIN SELECT RAISE(ABORT, 'audit_checkpoints is append-only'); END;
CREATE TRIGGER audit_checkpoints_no_delete BEFORE DELETE ON audit_checkpoints
	BEGIN SELECT RAISE(ABORT, 'audit_checkpoints is append-only'); END;
COMMIT;
