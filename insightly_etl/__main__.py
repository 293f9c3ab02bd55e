from insightly_etl.cli import main

main()
