-- Every digest day in the catalog with its counts and the run that last touched it.
SELECT d.digest_date, d.status, d.candidates, d.papers, d.dropped, d.last_run_id, r.finished_at
FROM days d LEFT JOIN runs r ON r.run_id = d.last_run_id
ORDER BY d.digest_date;
