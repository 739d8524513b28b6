"""The NExT-GPT output projector: LLM hidden states over signal tokens -> a generator's conditioning.

`signals` builds the span the LLM reads, `llm_features` gets its hidden states (transformers or
llama.cpp), `targets` the generator's own text-encoder output, `model` the projector, `trainer`
and `evaluate` train and measure it, `files` saves and loads it, and `conditioning` turns a
request into `prompt_embeds` for the generate tools.
"""
