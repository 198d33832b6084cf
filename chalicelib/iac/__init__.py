"""`netguard check`: the baseline evaluated on infrastructure as code before it is deployed.

CloudFormation templates (YAML or JSON, `cdk synth` output and SAM included) and Terraform plans
(`terraform show -json`) are read into the declared resources (`cfn`, `terraform`), mapped to the states
netguard's collectors produce from AWS (`states`, `network`), and evaluated by the engine's own
`evaluate.evaluate_state` (`unknown`): a value the file does not settle is unknown, and a control that
needs it is NOT_APPLICABLE with the reason, never guessed. `report` writes the table, JSON, SARIF 2.1.0
and JUnit XML; `command` is the CLI subcommand.

CLI only: nothing here is imported by app.py or deployed to Lambda (it needs PyYAML, which the Lambda
package does not ship).
"""
