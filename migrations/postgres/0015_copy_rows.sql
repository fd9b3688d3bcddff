-- One batch of an online copy (docs/online-changes.md): a type change's rows
-- into its shadow table, a dropped field's values into its backup. The next
-- `marain_n` keys of `source` after `marain_after` are counted, then their
-- rows inserted into `target` (`columns`, from the select list `selected`
-- over `source r`, and `joined`: more of the FROM clause, which may name the
-- batch's key range as $1 and $2) but for those a trigger put there already, which are as
-- new or newer. A plain insert: `ON CONFLICT` writes every row as a
-- speculative insertion, which took a copy nearly twice as long. Should a
-- trigger write one of the batch's rows meanwhile, the insert fails on the key
-- and the batch is inserted again with `ON CONFLICT DO NOTHING`. Answers the
-- keys taken and the last one, as every batch of a phase does. The
-- arguments are SQL the planner wrote, never a value.
CREATE FUNCTION marain_copy_rows(
    marain_n BIGINT,
    marain_after TEXT,
    source TEXT,
    joined TEXT,
    target TEXT,
    columns TEXT,
    selected TEXT,
    OUT marain_taken BIGINT,
    OUT marain_last TEXT
) LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE format(
        'SELECT COUNT(*), COALESCE(max(k.id), '''') FROM (SELECT id FROM %s WHERE id > $1 ORDER BY id LIMIT $2) k',
        source
    ) INTO marain_taken, marain_last USING marain_after, marain_n;
    IF marain_taken = 0 THEN
        RETURN;
    END IF;
    BEGIN
        EXECUTE format(
            'INSERT INTO %s (%s) SELECT %s FROM %s r %s WHERE r.id > $1 AND r.id <= $2 '
            'AND r.id NOT IN (SELECT id FROM %s WHERE id > $1 AND id <= $2)',
            target, columns, selected, source, joined, target
        ) USING marain_after, marain_last;
    EXCEPTION WHEN unique_violation THEN
        EXECUTE format(
            'INSERT INTO %s (%s) SELECT %s FROM %s r %s WHERE r.id > $1 AND r.id <= $2 '
            'ON CONFLICT (id) DO NOTHING',
            target, columns, selected, source, joined
        ) USING marain_after, marain_last;
    END;
END $$;
