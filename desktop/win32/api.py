"""ctypes prototypes for the Win32 functions tingxie calls, each declared once.

Import this module only on Windows (``sys.platform == "win32"``); elsewhere it raises
ImportError so a wrong import fails loudly instead of at the first call. Each section
belongs to one area of the app; docs/windows.md lists the documented behaviour relied on.
"""

from __future__ import annotations

import ctypes
import sys
from ctypes import wintypes

if sys.platform != "win32":  # pragma: no cover - the seam exists only on Windows
    raise ImportError("desktop.win32.api is only available on Windows")

# ---------------------------------------------------------------- keyboard input (SendInput)

# ---------------------------------------------------------------- clipboard

# ---------------------------------------------------------------- processes, tokens, elevation

# ---------------------------------------------------------------- windows, foreground, WinEvents
# The shell thread's hidden window, its message loop, and the foreground tracking
# (desktop.win32.native uses these; docs/windows.md, "Hotkey and shell").

_sh_user32 = ctypes.WinDLL("user32", use_last_error=True)
_sh_kernel32 = ctypes.WinDLL("kernel32", use_last_error=True)
_sh_wtsapi32 = ctypes.WinDLL("wtsapi32", use_last_error=True)

LRESULT = ctypes.c_ssize_t
HWND_MESSAGE = -3  # parent of a message-only window
EVENT_SYSTEM_FOREGROUND = 0x0003
WINEVENT_OUTOFCONTEXT = 0x0000
WINEVENT_SKIPOWNPROCESS = 0x0002
GA_ROOT = 2

WNDPROC = ctypes.WINFUNCTYPE(
    LRESULT, wintypes.HWND, wintypes.UINT, wintypes.WPARAM, wintypes.LPARAM
)
WINEVENTPROC = ctypes.WINFUNCTYPE(
    None,
    wintypes.HANDLE,  # HWINEVENTHOOK
    wintypes.DWORD,  # event
    wintypes.HWND,
    wintypes.LONG,  # idObject
    wintypes.LONG,  # idChild
    wintypes.DWORD,  # idEventThread
    wintypes.DWORD,  # dwmsEventTime
)


class WNDCLASSW(ctypes.Structure):
    _fields_ = [
        ("style", wintypes.UINT),
        ("lpfnWndProc", WNDPROC),
        ("cbClsExtra", ctypes.c_int),
        ("cbWndExtra", ctypes.c_int),
        ("hInstance", wintypes.HINSTANCE),
        ("hIcon", wintypes.HICON),
        ("hCursor", wintypes.HANDLE),
        ("hbrBackground", wintypes.HBRUSH),
        ("lpszMenuName", wintypes.LPCWSTR),
        ("lpszClassName", wintypes.LPCWSTR),
    ]


GetModuleHandleW = _sh_kernel32.GetModuleHandleW
GetModuleHandleW.argtypes = [wintypes.LPCWSTR]
GetModuleHandleW.restype = wintypes.HMODULE

GetCurrentThreadId = _sh_kernel32.GetCurrentThreadId
GetCurrentThreadId.argtypes = []
GetCurrentThreadId.restype = wintypes.DWORD

RegisterClassW = _sh_user32.RegisterClassW
RegisterClassW.argtypes = [ctypes.POINTER(WNDCLASSW)]
RegisterClassW.restype = wintypes.ATOM

CreateWindowExW = _sh_user32.CreateWindowExW
CreateWindowExW.argtypes = [
    wintypes.DWORD,
    wintypes.LPCWSTR,
    wintypes.LPCWSTR,
    wintypes.DWORD,
    ctypes.c_int,
    ctypes.c_int,
    ctypes.c_int,
    ctypes.c_int,
    wintypes.HWND,
    wintypes.HMENU,
    wintypes.HINSTANCE,
    wintypes.LPVOID,
]
CreateWindowExW.restype = wintypes.HWND

DestroyWindow = _sh_user32.DestroyWindow
DestroyWindow.argtypes = [wintypes.HWND]
DestroyWindow.restype = wintypes.BOOL

DefWindowProcW = _sh_user32.DefWindowProcW
DefWindowProcW.argtypes = [wintypes.HWND, wintypes.UINT, wintypes.WPARAM, wintypes.LPARAM]
DefWindowProcW.restype = LRESULT

GetMessageW = _sh_user32.GetMessageW
GetMessageW.argtypes = [ctypes.POINTER(wintypes.MSG), wintypes.HWND, wintypes.UINT, wintypes.UINT]
GetMessageW.restype = wintypes.BOOL  # -1 on error

DispatchMessageW = _sh_user32.DispatchMessageW
DispatchMessageW.argtypes = [ctypes.POINTER(wintypes.MSG)]
DispatchMessageW.restype = LRESULT

PostMessageW = _sh_user32.PostMessageW
PostMessageW.argtypes = [wintypes.HWND, wintypes.UINT, wintypes.WPARAM, wintypes.LPARAM]
PostMessageW.restype = wintypes.BOOL

PostThreadMessageW = _sh_user32.PostThreadMessageW
PostThreadMessageW.argtypes = [wintypes.DWORD, wintypes.UINT, wintypes.WPARAM, wintypes.LPARAM]
PostThreadMessageW.restype = wintypes.BOOL

SetWinEventHook = _sh_user32.SetWinEventHook
SetWinEventHook.argtypes = [
    wintypes.DWORD,
    wintypes.DWORD,
    wintypes.HMODULE,
    WINEVENTPROC,
    wintypes.DWORD,
    wintypes.DWORD,
    wintypes.DWORD,
]
SetWinEventHook.restype = wintypes.HANDLE

UnhookWinEvent = _sh_user32.UnhookWinEvent
UnhookWinEvent.argtypes = [wintypes.HANDLE]
UnhookWinEvent.restype = wintypes.BOOL

GetForegroundWindow = _sh_user32.GetForegroundWindow
GetForegroundWindow.argtypes = []
GetForegroundWindow.restype = wintypes.HWND

SetForegroundWindow = _sh_user32.SetForegroundWindow
SetForegroundWindow.argtypes = [wintypes.HWND]
SetForegroundWindow.restype = wintypes.BOOL

GetAncestor = _sh_user32.GetAncestor
GetAncestor.argtypes = [wintypes.HWND, wintypes.UINT]
GetAncestor.restype = wintypes.HWND

IsWindow = _sh_user32.IsWindow
IsWindow.argtypes = [wintypes.HWND]
IsWindow.restype = wintypes.BOOL

GetClassNameW = _sh_user32.GetClassNameW
GetClassNameW.argtypes = [wintypes.HWND, wintypes.LPWSTR, ctypes.c_int]
GetClassNameW.restype = ctypes.c_int

GetWindowThreadProcessId = _sh_user32.GetWindowThreadProcessId
GetWindowThreadProcessId.argtypes = [wintypes.HWND, ctypes.POINTER(wintypes.DWORD)]
GetWindowThreadProcessId.restype = wintypes.DWORD


# ---------------------------------------------------------------- hooks, raw input, key state
# Raw Input (no hook: nothing Windows can time out), hotkey registration for suppression,
# key state polling while a hold is active (desktop.win32.native).

RIDEV_INPUTSINK = 0x00000100  # receive input while not in the foreground (needs hwndTarget)
RID_INPUT = 0x10000003
HID_USAGE_PAGE_GENERIC = 0x01
HID_USAGE_GENERIC_KEYBOARD = 0x06


class RAWINPUTDEVICE(ctypes.Structure):
    _fields_ = [
        ("usUsagePage", wintypes.USHORT),
        ("usUsage", wintypes.USHORT),
        ("dwFlags", wintypes.DWORD),
        ("hwndTarget", wintypes.HWND),
    ]


RegisterRawInputDevices = _sh_user32.RegisterRawInputDevices
RegisterRawInputDevices.argtypes = [
    ctypes.POINTER(RAWINPUTDEVICE),
    wintypes.UINT,
    wintypes.UINT,
]
RegisterRawInputDevices.restype = wintypes.BOOL

GetRawInputData = _sh_user32.GetRawInputData
GetRawInputData.argtypes = [
    wintypes.HANDLE,  # HRAWINPUT (the WM_INPUT lParam)
    wintypes.UINT,
    wintypes.LPVOID,
    ctypes.POINTER(wintypes.UINT),
    wintypes.UINT,
]
GetRawInputData.restype = wintypes.UINT  # (UINT)-1 on error

GetAsyncKeyState = _sh_user32.GetAsyncKeyState
GetAsyncKeyState.argtypes = [ctypes.c_int]
GetAsyncKeyState.restype = wintypes.SHORT

RegisterHotKey = _sh_user32.RegisterHotKey
RegisterHotKey.argtypes = [wintypes.HWND, ctypes.c_int, wintypes.UINT, wintypes.UINT]
RegisterHotKey.restype = wintypes.BOOL

UnregisterHotKey = _sh_user32.UnregisterHotKey
UnregisterHotKey.argtypes = [wintypes.HWND, ctypes.c_int]
UnregisterHotKey.restype = wintypes.BOOL


# ------------------------------------------------------- single instance, session, registry
# The single-instance mutex (desktop.win32.instance) and session lock notifications.
# The Run key for start at login goes through winreg (stdlib), in desktop.win32.login.

ERROR_ALREADY_EXISTS = 183
ERROR_ACCESS_DENIED = 5
NOTIFY_FOR_THIS_SESSION = 0

CreateMutexW = _sh_kernel32.CreateMutexW
CreateMutexW.argtypes = [wintypes.LPVOID, wintypes.BOOL, wintypes.LPCWSTR]
CreateMutexW.restype = wintypes.HANDLE

WTSRegisterSessionNotification = _sh_wtsapi32.WTSRegisterSessionNotification
WTSRegisterSessionNotification.argtypes = [wintypes.HWND, wintypes.DWORD]
WTSRegisterSessionNotification.restype = wintypes.BOOL

WTSUnRegisterSessionNotification = _sh_wtsapi32.WTSUnRegisterSessionNotification
WTSUnRegisterSessionNotification.argtypes = [wintypes.HWND]
WTSUnRegisterSessionNotification.restype = wintypes.BOOL


# ---------------------------------------------------------------- jobs
# A Job object with JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE ties the processes the app starts
# (wsl.exe running the server) to the app: when the last handle to the job closes (the
# app exits, crashes or is ended in Task Manager) Windows terminates every process in it.
# desktop.launcher.Win32JobApi uses these.

_jobs_kernel32 = ctypes.WinDLL("kernel32", use_last_error=True)

JobObjectExtendedLimitInformation = 9  # JOBOBJECTINFOCLASS
JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE = 0x00002000
PROCESS_TERMINATE = 0x0001
PROCESS_SET_QUOTA = 0x0100


class JOBOBJECT_BASIC_LIMIT_INFORMATION(ctypes.Structure):
    _fields_ = [
        ("PerProcessUserTimeLimit", wintypes.LARGE_INTEGER),
        ("PerJobUserTimeLimit", wintypes.LARGE_INTEGER),
        ("LimitFlags", wintypes.DWORD),
        ("MinimumWorkingSetSize", ctypes.c_size_t),
        ("MaximumWorkingSetSize", ctypes.c_size_t),
        ("ActiveProcessLimit", wintypes.DWORD),
        ("Affinity", ctypes.c_size_t),  # ULONG_PTR
        ("PriorityClass", wintypes.DWORD),
        ("SchedulingClass", wintypes.DWORD),
    ]


class IO_COUNTERS(ctypes.Structure):
    _fields_ = [
        ("ReadOperationCount", ctypes.c_ulonglong),
        ("WriteOperationCount", ctypes.c_ulonglong),
        ("OtherOperationCount", ctypes.c_ulonglong),
        ("ReadTransferCount", ctypes.c_ulonglong),
        ("WriteTransferCount", ctypes.c_ulonglong),
        ("OtherTransferCount", ctypes.c_ulonglong),
    ]


class JOBOBJECT_EXTENDED_LIMIT_INFORMATION(ctypes.Structure):
    _fields_ = [
        ("BasicLimitInformation", JOBOBJECT_BASIC_LIMIT_INFORMATION),
        ("IoInfo", IO_COUNTERS),
        ("ProcessMemoryLimit", ctypes.c_size_t),
        ("JobMemoryLimit", ctypes.c_size_t),
        ("PeakProcessMemoryUsed", ctypes.c_size_t),
        ("PeakJobMemoryUsed", ctypes.c_size_t),
    ]


CreateJobObjectW = _jobs_kernel32.CreateJobObjectW
CreateJobObjectW.argtypes = [wintypes.LPVOID, wintypes.LPCWSTR]
CreateJobObjectW.restype = wintypes.HANDLE

SetInformationJobObject = _jobs_kernel32.SetInformationJobObject
SetInformationJobObject.argtypes = [wintypes.HANDLE, ctypes.c_int, wintypes.LPVOID, wintypes.DWORD]
SetInformationJobObject.restype = wintypes.BOOL

AssignProcessToJobObject = _jobs_kernel32.AssignProcessToJobObject
AssignProcessToJobObject.argtypes = [wintypes.HANDLE, wintypes.HANDLE]
AssignProcessToJobObject.restype = wintypes.BOOL

OpenProcess = _jobs_kernel32.OpenProcess
OpenProcess.argtypes = [wintypes.DWORD, wintypes.BOOL, wintypes.DWORD]
OpenProcess.restype = wintypes.HANDLE

CloseHandle = _jobs_kernel32.CloseHandle
CloseHandle.argtypes = [wintypes.HANDLE]
CloseHandle.restype = wintypes.BOOL
