// A device's incidents in the order they were opened, for tests that list several: by the seq of each one's first
// event. opened_at is not enough (two opened in the same millisecond tie, and their ids are random). Plain SQL that
// SQLite and PostgreSQL both take, on a query whose FROM is `incidents`.
export const IN_OPENING_ORDER = 'order by (select min(e.seq) from incident_events e where e.incident_id = incidents.id)';
