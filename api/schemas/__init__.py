"""API schemas, in families per resource (`JobCreate`, `JobPublic`, `JobList`), separate from ORM tables."""
