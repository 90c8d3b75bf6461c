from dsmexp.cli import main

main()
