"""What tests, the demo, benchmarks and reliability scripts use to fake AWS, never deployed.

moto made to behave like AWS (`moto_fidelity`: notebooks, `moto_sagemaker`: jobs, models, domains,
`moto_dynamodb`: transactions), the fault layer (`faults`, `fault_scenario`), a local Slack-compatible
webhook receiver (`receiver`), the worlds built in a mock account (`world`, `secure_world`) and
real-shaped events (`events`). Product code (chalicelib/, app.py) never imports it
(tests/unit/test_imports.py).
"""
