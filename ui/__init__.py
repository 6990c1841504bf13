"""The Streamlit chat UI, a client of the qa HTTP service."""
