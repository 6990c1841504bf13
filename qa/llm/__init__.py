"""Generated answers: the LLM client, the prompt, the sentence check, and generation."""
