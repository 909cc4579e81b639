from leukoscope.cli.main import run

run()
