# LumaPay's image: one image for the web server, the Celery worker and beat (docker-compose.yml
# picks the command). Build: docker compose build
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1

# WeasyPrint (PDF documents) needs Pango, HarfBuzz and a font; gettext compiles the translations.
RUN apt-get update \
    && apt-get install -y --no-install-recommends \
        libpango-1.0-0 libpangoft2-1.0-0 libharfbuzz-subset0 fonts-dejavu-core gettext \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /app

# The locked, hash-checked dependencies first, so a code change does not reinstall them.
# (The lock's --extra-index-url/--find-links lines name folders of the developers' machines;
# pip warns that they are missing here and takes everything from PyPI.)
COPY requirements.lock ./
RUN pip install --require-hashes -r requirements.lock

COPY . .

# Static files and compiled translations are built into the image. Settings refuse to load with
# DEBUG off and no secrets, so this step gets throw-away values that exist only in this RUN.
RUN DEBUG=false \
    SECRET_KEY=build-time-only-not-a-secret-0123456789abcdefghijklmnop \
    ALLOWED_HOSTS=build.invalid \
    DATABASE_URL=postgres://build@build.invalid:5432/build \
    sh -c 'python manage.py collectstatic --noinput \
           && if find . -path "*/locale/*.po" | grep -q .; then python manage.py compilemessages; fi'

RUN useradd --create-home --uid 10001 lumapay \
    && mkdir -p /app/media \
    && chown lumapay:lumapay /app/media
USER lumapay

EXPOSE 8000
# gunicorn reads WEB_CONCURRENCY for its number of workers, and gunicorn.conf.py for the rest
# (its access log leaves out query strings and referrers: searches hold patients' names).
CMD ["gunicorn", "lumapay.wsgi", "--config", "gunicorn.conf.py"]
