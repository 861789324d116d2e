"""Agent frameworks pointed at `toolrl serve` through base_url, unchanged: LangChain's
ChatOpenAI.bind_tools (invoke and stream) and the OpenAI Agents SDK in chat-completions mode
with one function tool. tool_choice "required" makes the untrained default model call the tool
(the token mask enforces it), so each framework sees and parses a real tool call.
"""
import asyncio
import json

import pytest

langchain_openai = pytest.importorskip("langchain_openai", reason="langchain-openai is installed by tests/api/run.sh")
agents = pytest.importorskip("agents", reason="openai-agents is installed by tests/api/run.sh")


def get_weather(city: str) -> str:
    """Current weather of a city."""
    return "sunny in %s" % city


def test_langchain_bind_tools(base_url, model_id):
    llm = langchain_openai.ChatOpenAI(base_url=base_url + "/v1", api_key="unused", model=model_id, temperature=0,
                                      max_tokens=400, max_retries=0)
    bound = llm.bind_tools([get_weather], tool_choice="required")
    msg = bound.invoke("What is the weather in Paris?")
    assert msg.tool_calls and msg.tool_calls[0]["name"] == "get_weather"
    assert isinstance(msg.tool_calls[0]["args"], dict)
    # streaming: the chunks add up to the same call
    acc = None
    for chunk in bound.stream("What is the weather in Paris?"):
        acc = chunk if acc is None else acc + chunk
    assert acc.tool_calls and acc.tool_calls[0]["name"] == "get_weather"
    assert acc.tool_calls[0]["args"] == msg.tool_calls[0]["args"]
    # plain text works too
    assert isinstance(llm.invoke("Say hello.").content, str)


def test_openai_agents_chat_completions(base_url, model_id):
    from agents import Agent, ModelSettings, OpenAIChatCompletionsModel, Runner, function_tool, set_tracing_disabled
    from openai import AsyncOpenAI

    set_tracing_disabled(True)
    calls = []

    @function_tool
    def weather(city: str) -> str:
        """Current weather of a city."""
        calls.append(city)
        return "sunny"

    client = AsyncOpenAI(base_url=base_url + "/v1", api_key="unused", max_retries=0)
    agent = Agent(name="assistant", instructions="Answer with the tools.", tools=[weather],
                  model=OpenAIChatCompletionsModel(model=model_id, openai_client=client),
                  model_settings=ModelSettings(tool_choice="required", temperature=0, max_tokens=400),
                  reset_tool_choice=True)
    result = asyncio.run(Runner.run(agent, "What is the weather in Paris?", max_turns=3))
    assert len(calls) >= 1  # the SDK parsed our tool call and ran the function
    assert isinstance(result.final_output, str)
