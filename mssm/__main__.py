from mssm.cli.main import main

main()
