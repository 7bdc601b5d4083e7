-- rnnopt views over Optuna's RDB schema: MySQL 8 / MariaDB 10.5 or later.
-- Read-only. Installed by `python -m rnnopt.db views --storage URL` (drop + create, idempotent).
-- Keep the column lists identical across sql/sqlite.sql, sql/postgresql.sql, sql/mysql.sql.

DROP VIEW IF EXISTS rnnopt_leaderboard;
DROP VIEW IF EXISTS rnnopt_trials;
DROP VIEW IF EXISTS rnnopt_trial_params;
DROP VIEW IF EXISTS rnnopt_studies;

-- One row per compare or search study (user attribute rnnopt.mode; a study stored before
-- modes existed counts when it has rnnopt.task).
CREATE VIEW rnnopt_studies AS
SELECT
    s.study_id,
    s.study_name,
    JSON_UNQUOTE(task.value_json) AS task,
    -- the user's data (rnnopt.data: files' SHA-256 and shaping options, JSON); NULL for the
    -- paper's tasks. Two data sets of one task are two values.
    data.value_json AS data,
    JSON_UNQUOTE(cell.value_json) AS cell,
    JSON_UNQUOTE(mode.value_json) AS mode,
    JSON_UNQUOTE(metric.value_json) AS metric,
    COALESCE(JSON_UNQUOTE(dir.value_json), lower(d.direction)) AS direction
FROM studies s
JOIN study_user_attributes task ON task.study_id = s.study_id AND task.`key` = 'rnnopt.task'
LEFT JOIN study_user_attributes cell ON cell.study_id = s.study_id AND cell.`key` = 'rnnopt.cell'
LEFT JOIN study_user_attributes mode ON mode.study_id = s.study_id AND mode.`key` = 'rnnopt.mode'
LEFT JOIN study_user_attributes data ON data.study_id = s.study_id AND data.`key` = 'rnnopt.data'
LEFT JOIN study_user_attributes metric
    ON metric.study_id = s.study_id AND metric.`key` = 'rnnopt.metric'
LEFT JOIN study_user_attributes dir ON dir.study_id = s.study_id AND dir.`key` = 'rnnopt.direction'
LEFT JOIN study_directions d ON d.study_id = s.study_id AND d.objective = 0
-- rnnopt.schema.CELL_STUDY_MODES; architecture-search studies (mode evolve) are not cell studies
WHERE mode.value_json IS NULL OR mode.value_json IN ('"compare"', '"search"');

-- One row per (trial, parameter): the value decoded to what the objective saw.
-- param_value: text (categorical choices by label: 'gru', 'true'; integers without '.0');
-- param_json: the same as JSON; param_number: the value if it is a number (else NULL).
CREATE VIEW rnnopt_trial_params AS
SELECT
    t.trial_id,
    t.study_id,
    t.number AS trial_number,
    dp.param_name,
    CASE WHEN dp.param_json = 'null' THEN NULL ELSE JSON_UNQUOTE(dp.param_json) END
        AS param_value,
    dp.param_json,
    CASE WHEN JSON_TYPE(dp.param_json) IN ('INTEGER', 'DOUBLE')
         THEN CAST(dp.param_json AS DOUBLE) END AS param_number,
    dp.param_internal,
    dp.distribution
FROM (
    SELECT
        p.trial_id,
        p.param_name,
        p.param_value AS param_internal,
        JSON_UNQUOTE(JSON_EXTRACT(p.distribution_json, '$.name')) AS distribution,
        CASE WHEN JSON_UNQUOTE(JSON_EXTRACT(p.distribution_json, '$.name'))
                  = 'CategoricalDistribution'
             THEN JSON_EXTRACT(p.distribution_json, CONCAT('$.attributes.choices[',
                                                           CAST(p.param_value AS SIGNED), ']'))
             WHEN JSON_UNQUOTE(JSON_EXTRACT(p.distribution_json, '$.name')) LIKE 'Int%'
             THEN CAST(CAST(p.param_value AS SIGNED) AS CHAR)
             ELSE CAST(p.param_value AS CHAR) END AS param_json
    FROM trial_params p
) dp
JOIN trials t ON t.trial_id = dp.trial_id
JOIN rnnopt_studies s ON s.study_id = t.study_id;

-- One row per trial of an rnnopt study.
CREATE VIEW rnnopt_trials AS
WITH
ua AS (
    SELECT
        a.trial_id,
        max(CASE WHEN a.`key` = 'cell' THEN a.str END) AS cell,
        max(CASE WHEN a.`key` = 'device' THEN a.str END) AS device,
        max(CASE WHEN a.`key` = 'stop_reason' THEN a.str END) AS stop_reason,
        max(CASE WHEN a.`key` = 'reason' THEN a.str END) AS reason,
        max(CASE WHEN a.`key` = 'n_params' THEN CAST(a.num AS SIGNED) END) AS n_params,
        max(CASE WHEN a.`key` = 'hidden_size' THEN CAST(a.num AS SIGNED) END) AS hidden_size,
        max(CASE WHEN a.`key` = 'steps' THEN CAST(a.num AS SIGNED) END) AS steps,
        max(CASE WHEN a.`key` = 'tokens_per_s' THEN a.num END) AS tokens_per_s,
        max(CASE WHEN a.`key` = 'test_metric' THEN a.num END) AS test_metric,
        max(CASE WHEN a.`key` = 'valid_metric' THEN a.num END) AS valid_metric,
        -- a confirmation trial (rnnopt/confirm.py): the search trial it retrains
        max(CASE WHEN a.`key` = 'confirm_of' THEN CAST(a.num AS SIGNED) END) AS confirm_of
    FROM (
        -- Optuna writes float('nan') as the non-JSON text NaN: only JSON numbers are numbers.
        SELECT
            trial_id,
            `key`,
            CASE WHEN value_json REGEXP '^-?[0-9]+([.][0-9]+)?([eE][-+]?[0-9]+)?$'
                 THEN CAST(value_json AS DOUBLE) END AS num,
            CASE WHEN value_json LIKE '"%' THEN JSON_UNQUOTE(value_json) END AS str
        FROM trial_user_attributes
    ) a
    GROUP BY a.trial_id
),
pj AS (
    SELECT
        p.trial_id,
        JSON_OBJECTAGG(p.param_name, JSON_EXTRACT(p.param_json, '$')) AS params,
        max(CASE WHEN p.param_name = 'cell' THEN p.param_value END) AS cell_param,
        max(CASE WHEN p.param_name = 'lr' THEN p.param_number END) AS lr,
        max(CASE WHEN p.param_name = 'clip_norm' THEN p.param_number END) AS clip_norm,
        max(CASE WHEN p.param_name = 'init_scale' THEN p.param_number END) AS init_scale,
        max(CASE WHEN p.param_name = 'layers' THEN p.param_number END) AS layers,
        max(CASE WHEN p.param_name = 'dropout' THEN p.param_number END) AS dropout,
        max(CASE WHEN p.param_name = 'forget_bias' THEN p.param_number END) AS forget_bias,
        max(CASE WHEN p.param_name = 'input_gate' THEN p.param_value END) AS input_gate,
        max(CASE WHEN p.param_name = 'output_gate' THEN p.param_value END) AS output_gate,
        max(CASE WHEN p.param_name = 'forget_gate' THEN p.param_value END) AS forget_gate,
        max(CASE WHEN p.param_name = 'param_budget' THEN p.param_number END) AS param_budget
    FROM rnnopt_trial_params p
    GROUP BY p.trial_id
)
SELECT
    t.trial_id,
    s.study_id,
    s.study_name,
    s.task,
    s.data,
    COALESCE(NULLIF(s.cell, '*'), pj.cell_param, ua.cell) AS cell,
    s.mode,
    s.metric,
    s.direction,
    t.number AS trial_number,
    t.state,
    -- Infinite objective values (Optuna's INF_POS / INF_NEG) read as NULL, as in MariaDB.
    CASE WHEN v.value_type = 'FINITE' THEN v.value END AS value,
    COALESCE(pj.params, '{}') AS params,
    pj.lr, pj.clip_norm, pj.init_scale, pj.layers, pj.dropout, pj.forget_bias,
    pj.input_gate, pj.output_gate, pj.forget_gate, pj.param_budget,
    ua.n_params, ua.hidden_size, ua.tokens_per_s, ua.device, ua.stop_reason, ua.steps,
    ua.test_metric, ua.valid_metric, ua.reason, ua.confirm_of,
    t.datetime_start, t.datetime_complete
FROM trials t
JOIN rnnopt_studies s ON s.study_id = t.study_id
LEFT JOIN trial_values v ON v.trial_id = t.trial_id AND v.objective = 0
LEFT JOIN ua ON ua.trial_id = t.trial_id
LEFT JOIN pj ON pj.trial_id = t.trial_id;

-- One row per (task, data, cell, direction) over all rnnopt studies in the database (search trials;
-- confirmation trials are in rnnopt_trials with confirm_of set).
CREATE VIEW rnnopt_leaderboard AS
WITH
ranked AS (
    SELECT
        task, data, cell, direction, value,
        row_number() OVER (PARTITION BY task, data, cell, direction
                           ORDER BY CASE WHEN direction = 'maximize' THEN -value ELSE value END)
            AS rk,
        count(*) OVER (PARTITION BY task, data, cell, direction) AS n
    FROM rnnopt_trials
    WHERE state = 'COMPLETE' AND value IS NOT NULL AND confirm_of IS NULL
),
top AS (
    SELECT task, data, cell, direction, avg(value) AS median_top10
    FROM ranked
    -- k = ceil(n / 10) best values; their median is the mean of ranks (k+1) div 2, (k+2) div 2.
    WHERE rk IN (((n + 9) DIV 10 + 1) DIV 2, ((n + 9) DIV 10 + 2) DIV 2)
    GROUP BY task, data, cell, direction
)
SELECT
    tr.task,
    tr.data,
    tr.cell,
    tr.direction,
    max(tr.metric) AS metric,
    count(DISTINCT tr.study_id) AS n_studies,
    count(*) AS n_trials,
    CAST(sum(CASE WHEN tr.state = 'COMPLETE' THEN 1 ELSE 0 END) AS SIGNED) AS n_complete,
    CAST(sum(CASE WHEN tr.state = 'PRUNED' THEN 1 ELSE 0 END) AS SIGNED) AS n_pruned,
    CAST(sum(CASE WHEN tr.state = 'FAIL' THEN 1 ELSE 0 END) AS SIGNED) AS n_failed,
    CAST(sum(CASE WHEN tr.state IN ('RUNNING', 'WAITING') THEN 1 ELSE 0 END) AS SIGNED) AS n_running,
    CAST(sum(CASE WHEN tr.stop_reason = 'diverged' THEN 1 ELSE 0 END) AS SIGNED) AS n_diverged,
    CASE WHEN tr.direction = 'maximize'
         THEN max(CASE WHEN tr.state = 'COMPLETE' THEN tr.value END)
         ELSE min(CASE WHEN tr.state = 'COMPLETE' THEN tr.value END) END AS best_value,
    max(top.median_top10) AS median_top10,
    CAST(COALESCE(sum(tr.steps), 0) AS SIGNED) AS steps
FROM rnnopt_trials tr
LEFT JOIN top
    ON top.task = tr.task AND top.data <=> tr.data AND top.cell <=> tr.cell
    AND top.direction = tr.direction
WHERE tr.confirm_of IS NULL  -- the search's trials only
GROUP BY tr.task, tr.data, tr.cell, tr.direction;
