"""One APIRouter per resource; each translates HTTP into calls into app.service and app.storage."""
