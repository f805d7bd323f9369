"""Provider APIs unimodel both calls (providers/) and serves (frontends/): the vocabulary both sides share, so that
what a word means is written once — Anthropic's error types and their statuses, its stop reasons, its usage."""
