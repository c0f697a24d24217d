<#
.SYNOPSIS
Removes the Shipshape agent that install.ps1 installed.

.DESCRIPTION
Unregisters the task \Shipshape\Report (`shipshape schedule remove --system`),
removes "$env:ProgramFiles\Shipshape" and its entry in the machine PATH. With
-Purge it also deletes "$env:ProgramData\Shipshape": the enrollment, outbox,
caches and the file-stored device key. Retire the machine on the server too:
`shipshape-server device revoke ID`.

Run it elevated, or as SYSTEM:
  powershell.exe -NoProfile -ExecutionPolicy Bypass -File uninstall.ps1 [-Purge]

.PARAMETER Purge
Also delete the agent's configuration and state.
#>
[CmdletBinding()]
param(
    [switch]$Purge
)

Set-StrictMode -Version Latest
$ErrorActionPreference = 'Stop'

$principal = New-Object Security.Principal.WindowsPrincipal([Security.Principal.WindowsIdentity]::GetCurrent())
if (-not $principal.IsInRole([Security.Principal.WindowsBuiltInRole]::Administrator)) {
    throw 'Run this from an elevated PowerShell (Run as administrator), or as SYSTEM.'
}

$dir = Join-Path $env:ProgramFiles 'Shipshape'
$exe = Join-Path $dir 'shipshape.exe'
$data = Join-Path $env:ProgramData 'Shipshape'

if (Test-Path -LiteralPath $exe -PathType Leaf) {
    Stop-ScheduledTask -TaskPath '\Shipshape\' -TaskName 'Report' -ErrorAction SilentlyContinue
    & $exe schedule remove --system
    if ($LASTEXITCODE -ne 0) { throw "shipshape schedule remove failed (exit $LASTEXITCODE): see its message above" }
}

$machinePath = [Environment]::GetEnvironmentVariable('Path', 'Machine')
$kept = @($machinePath -split ';' | Where-Object { $_ -and $_ -ne $dir })
[Environment]::SetEnvironmentVariable('Path', ($kept -join ';'), 'Machine')

if (Test-Path -LiteralPath $dir) { Remove-Item -LiteralPath $dir -Recurse -Force }
if ($Purge -and (Test-Path -LiteralPath $data)) { Remove-Item -LiteralPath $data -Recurse -Force }

Write-Output 'Shipshape is removed.'
