FROM python:3.11-slim

# libgomp for torch's CPU kernels; ffmpeg lets Gradio write MP4 trajectory videos.
RUN apt-get update && apt-get install -y --no-install-recommends libgomp1 ffmpeg \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /app
COPY requirements.txt .
RUN pip install --no-cache-dir -r requirements.txt
COPY . .

ENV GRADIO_SERVER_NAME=0.0.0.0 GRADIO_ANALYTICS_ENABLED=False PYTHONUNBUFFERED=1
EXPOSE 7860
CMD ["python", "app.py"]
