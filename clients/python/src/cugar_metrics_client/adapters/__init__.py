"""Framework adapters: LangChain/LangGraph callbacks and an OpenAI Agents SDK trace processor.

Each lives in its own module and needs its extra (``cugar-metrics-client[langchain]``,
``cugar-metrics-client[openai-agents]``); importing this package needs neither.
"""
