"""tollhouse: API keys, rate limits, credits, usage and an OpenAI-compatible gateway for AI APIs."""
