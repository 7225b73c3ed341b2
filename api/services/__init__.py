"""Work behind the routes that is not HTTP: storage, the task queue, job creation. No FastAPI imports."""
