"""One APIRouter per resource; each translates HTTP into calls into its application service
(``app.services``) and ``app.storage``."""
