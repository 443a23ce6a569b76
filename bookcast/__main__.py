from bookcast.cli import main

main()
