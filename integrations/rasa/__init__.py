"""The optional Rasa 3.6 NLU service, called over HTTP (``HUIYIN_NLU=rasa``).

Rasa runs as its own process (Python 3.10; see ``scripts/rasa-service.sh`` and ``docker/rasa/``);
:mod:`integrations.rasa.adapter` translates its ``/model/parse`` answers into
:class:`bot.nlu.base.Understanding`.
"""
