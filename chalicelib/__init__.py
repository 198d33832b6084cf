"""netguard: event-driven compliance remediation for SageMaker networking.

Flow: trigger -> refs -> collect -> evaluate -> decide -> act -> record + notify.
"""
