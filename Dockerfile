# LT Explorer: serves the app on port 8501 with the bundled demo trajectories inside.
# CPU image. For NVIDIA GPUs, start from a CUDA runtime image instead, e.g.
#   FROM pytorch/pytorch:2.5.1-cuda12.4-cudnn9-runtime
# and drop the CPU index line below; run with `docker run --gpus all -p 8501:8501 lt-explorer`.
FROM python:3.11-slim
WORKDIR /app
COPY requirements.txt pyproject.toml README.md ./
COPY lt_core ./lt_core
RUN pip install --no-cache-dir torch torchvision --index-url https://download.pytorch.org/whl/cpu \
 && pip install --no-cache-dir -r requirements.txt
COPY . .
ENV LT_RUNS_DIR=/app/runs LT_DATA_ROOT=/app/data
EXPOSE 8501
CMD ["streamlit", "run", "app.py", "--server.port=8501", "--server.address=0.0.0.0", "--server.headless=true"]
