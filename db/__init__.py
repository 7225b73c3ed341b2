"""Storage of the service: ORM tables, the session factory and the job state machine.

Imported by the API, the Celery worker and the migrations; nothing here imports FastAPI or torch.
"""
