"""One message's turn: the pipeline (:mod:`bot.turn.pipeline`), what a turn knows and produces
(:mod:`bot.turn.context`) and the handlers it is offered to (:mod:`bot.turn.handlers`)."""

from bot.turn.pipeline import TurnPipeline

__all__ = ["TurnPipeline"]
